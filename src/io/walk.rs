//! The one recursive folder walker. Every place that looks for files below a folder (images
//! named on the command line, images of a data set, a data set's ground-truth CSV, the output
//! folder of `synth`) lists through [`walk`], so they agree on order and on what they see.
//!
//! The order is sorted by path, so results never depend on the file system's listing order.
//! Nothing is skipped by name (hidden files included, as before the walkers were merged);
//! symbolic links to folders are followed, like `Path::is_dir`.

use crate::error::{Result, file_err};
use std::path::{Path, PathBuf};

/// How deep to look and what to return.
#[derive(Clone, Copy, Debug)]
pub struct Walk {
    /// 0: the folder's own entries only; 1: also those of its subfolders; ...
    pub max_depth: usize,
    /// Also return folders (otherwise only files).
    pub folders: bool,
}

impl Walk {
    /// Every file at any depth.
    pub const FILES: Walk = Walk {
        max_depth: usize::MAX,
        folders: false,
    };
}

/// Paths below `root` (not `root` itself) that `how` asks for, sorted. An unreadable folder is
/// an error naming it.
pub fn walk(root: &Path, how: Walk) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| file_err(&dir, format!("cannot list folder: {e}")))?;
        for entry in rd {
            let path = entry
                .map_err(|e| file_err(&dir, format!("cannot list folder: {e}")))?
                .path();
            if path.is_dir() {
                if depth < how.max_depth {
                    stack.push((path.clone(), depth + 1));
                }
                if how.folders {
                    out.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_depth_limited_and_hidden_kept() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("b/c")).unwrap();
        for f in ["z.txt", ".hidden", "b/y.txt", "b/c/x.txt"] {
            std::fs::write(r.join(f), b"").unwrap();
        }
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| {
                    p.strip_prefix(r)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/")
                })
                .collect()
        };
        assert_eq!(
            rel(walk(r, Walk::FILES).unwrap()),
            [".hidden", "b/c/x.txt", "b/y.txt", "z.txt"]
        );
        let top = Walk {
            max_depth: 0,
            folders: true,
        };
        assert_eq!(rel(walk(r, top).unwrap()), [".hidden", "b", "z.txt"]);
        let one = Walk {
            max_depth: 1,
            folders: false,
        };
        assert_eq!(rel(walk(r, one).unwrap()), [".hidden", "b/y.txt", "z.txt"]);
        assert!(walk(&r.join("missing"), Walk::FILES).is_err());
    }
}
