//! Test-time augmentation of `infer` (`--tta`): which views of an image are classified and
//! averaged. View 0 is always the image itself (Grad-CAM explains that view only, see
//! `pipeline::gradcam`).

use std::path::Path;

use crate::data::image::{Preprocess, Transform};
use crate::data::input::view_tensor;
use crate::error::Result;

/// The views whose probabilities `infer` averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Tta {
    /// The image alone.
    #[default]
    None,
    /// The image and its horizontal mirror (the mirror is taken of the decoded image, before
    /// resizing: `infer --tta` as it always was).
    Mirror,
    /// The 8 symmetries of the square input (identity, three quarter turns, four reflections),
    /// taken of the preprocessed square tensor: exact pixel permutations, one decode and resize.
    Dihedral,
}

impl Tta {
    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Mirror => "mirror",
            Tta::Dihedral => "dihedral",
        }
    }

    /// Views per image.
    pub fn views(self) -> usize {
        match self {
            Tta::None => 1,
            Tta::Mirror => 2,
            Tta::Dihedral => 8,
        }
    }

    /// The views of the image at `path` as one flat vector of [`Tta::views`] planar
    /// [3, size, size] images, the image itself first.
    pub fn decode(self, path: &Path, pp: &Preprocess, size: u32) -> Result<Vec<f32>> {
        let id = view_tensor(path, &Transform::IDENTITY, pp, size)?.into_data();
        Ok(match self {
            Tta::None => id,
            Tta::Mirror => {
                let m = view_tensor(path, &Transform::IDENTITY.mirrored(), pp, size)?;
                let mut x = id;
                x.extend_from_slice(m.data());
                x
            }
            Tta::Dihedral => {
                let s = size as usize;
                let mut x = Vec::with_capacity(8 * id.len());
                for k in 0..8 {
                    x.extend(dihedral(&id, s, k));
                }
                x
            }
        })
    }
}

/// Element `k` (0..8) of the dihedral group of the square applied to a planar [C, s, s] image:
/// output pixel (r, c) reads input (r', c') with r' = s-1-r when bit 1 of k (top-bottom flip),
/// c' = s-1-c when bit 0 (left-right mirror), then rows and columns swapped when bit 2
/// (transpose). k = 0 is the identity; 5 and 6 (transpose + one flip) are the quarter turns,
/// 3 the half turn, 1, 2, 4 and 7 the four reflections: all 8 distinct.
pub fn dihedral(x: &[f32], s: usize, k: usize) -> Vec<f32> {
    let plane = s * s;
    let mut out = Vec::with_capacity(x.len());
    for ch in x.chunks(plane) {
        for r in 0..s {
            for c in 0..s {
                let r1 = if k & 2 != 0 { s - 1 - r } else { r };
                let c1 = if k & 1 != 0 { s - 1 - c } else { c };
                let (sr, sc) = if k & 4 != 0 { (c1, r1) } else { (r1, c1) };
                out.push(ch[sr * s + sc]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dihedral;

    #[test]
    fn the_eight_views_are_the_distinct_symmetries_of_the_square() {
        // A 3x3 image with distinct values: every view is a permutation of it, all 8 differ,
        // k = 5 is a quarter turn (applied four times: the identity) and k = 4 its own inverse.
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let views: Vec<Vec<f32>> = (0..8).map(|k| dihedral(&x, 3, k)).collect();
        for (i, a) in views.iter().enumerate() {
            let mut sorted = a.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, x);
            for b in &views[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(views[1], vec![2., 1., 0., 5., 4., 3., 8., 7., 6.]); // mirror
        assert_eq!(views[4], vec![0., 3., 6., 1., 4., 7., 2., 5., 8.]); // transpose
        let mut r = x.clone();
        for _ in 0..4 {
            r = dihedral(&r, 3, 5);
        }
        assert_eq!(r, x);
        assert_eq!(dihedral(&views[4], 3, 4), x);
    }
}
