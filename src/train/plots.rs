//! The report's figures, drawn with `plotters` into PNG files: the validation confusion matrix
//! and the per-epoch loss / metric curves. Text needs a TrueType font: the first of
//! $SKINENGINE_FONT and the common system sans-serif fonts (DejaVu, Liberation) is used; with
//! none, the figures are skipped and the report says so (the tables carry the same numbers).

use crate::error::{Result, file_err};
use crate::train::EpochMetrics;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font once; returns its path, or None when no usable font exists.
pub fn font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var("SKINENGINE_FONT").ok();
        env.iter()
            .map(|s| s.as_str())
            .chain(FONT_CANDIDATES.iter().copied())
            .find_map(|p| {
                let bytes = std::fs::read(p).ok()?;
                // The font lives for the whole process: plotters keeps a 'static reference.
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).ok()?;
                Some(PathBuf::from(p))
            })
    })
    .as_deref()
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> crate::error::Error {
    file_err(path, format!("cannot draw figure: {e}"))
}

/// Draws into a temporary file beside `path`, then renames it over `path` (atomic).
fn atomic_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    // The bitmap encoder picks the format from the extension, so the temporary name ends in .png.
    let name = path
        .file_name()
        .map_or_else(|| "figure.png".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".tmp-{}-{name}", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        draw(&root)?;
        root.present().map_err(|e| draw_err(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, format!("cannot write: {e}")))
}

/// Confusion matrix heat map (rows truth, columns prediction), counts in the cells, each row
/// shaded by its share of the row so rare classes stay readable. Laid out in pixels with
/// plotters' shapes and text (cell-centred labels need no axis machinery). `codes` names the
/// rows and columns.
pub fn confusion_png<S: AsRef<str>>(
    path: &Path,
    confusion: &[Vec<usize>],
    codes: &[S],
) -> Result<()> {
    const CELL: i32 = 66;
    const LEFT: i32 = 90;
    const TOP: i32 = 60;
    let k = codes.len() as i32;
    atomic_png(
        path,
        (
            LEFT as u32 + k as u32 * CELL as u32 + 30,
            TOP as u32 + k as u32 * CELL as u32 + 70,
        ),
        |root| {
            let e = |err: DrawingAreaErrorKind<_>| draw_err(path, err);
            let center = |txt: String, (x, y): (i32, i32), size: u32, color: &RGBColor| {
                Text::new(
                    txt,
                    (x, y),
                    ("sans-serif", size)
                        .into_font()
                        .color(color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            };
            root.draw(&center(
                "Validation confusion matrix".into(),
                (LEFT + k * CELL / 2, 22),
                20,
                &BLACK,
            ))
            .map_err(e)?;
            for (t, row) in confusion.iter().enumerate() {
                let total = row.iter().sum::<usize>().max(1) as f64;
                let y0 = TOP + t as i32 * CELL;
                root.draw(&center(
                    codes[t].as_ref().into(),
                    (LEFT / 2 + 8, y0 + CELL / 2),
                    15,
                    &BLACK,
                ))
                .map_err(e)?;
                for (p, &v) in row.iter().enumerate() {
                    let share = v as f64 / total;
                    let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
                    let x0 = LEFT + p as i32 * CELL;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + CELL, y0 + CELL)],
                        RGBColor(shade, shade, 255).filled(),
                    ))
                    .map_err(e)?;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + CELL, y0 + CELL)],
                        BLACK.mix(0.3),
                    ))
                    .map_err(e)?;
                    let color = if share > 0.5 { WHITE } else { BLACK };
                    root.draw(&center(
                        v.to_string(),
                        (x0 + CELL / 2, y0 + CELL / 2),
                        18,
                        &color,
                    ))
                    .map_err(e)?;
                }
            }
            let bottom = TOP + k * CELL;
            for (p, name) in codes.iter().enumerate() {
                root.draw(&center(
                    name.as_ref().into(),
                    (LEFT + p as i32 * CELL + CELL / 2, bottom + 14),
                    15,
                    &BLACK,
                ))
                .map_err(e)?;
            }
            root.draw(&center(
                "predicted".into(),
                (LEFT + k * CELL / 2, bottom + 42),
                16,
                &BLACK,
            ))
            .map_err(e)?;
            root.draw(&center(
                "truth".into(),
                (LEFT / 2 + 8, TOP - 16),
                16,
                &BLACK,
            ))
            .map_err(e)?;
            Ok(())
        },
    )
}

/// Two panels over epochs: train/val loss; train/val bmca and mean precision.
pub fn curves_png(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    atomic_png(path, (1000, 420), |root| {
        let panels = root.split_evenly((1, 2));
        let n = history.len().max(2) as f64;
        let max_loss = history
            .iter()
            .flat_map(|h| [h.train_loss, h.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.1f64, f64::max);
        type Series = (&'static str, RGBColor, fn(&EpochMetrics) -> f64);
        let plots: [(&str, f64, Vec<Series>); 2] = [
            (
                "loss",
                max_loss * 1.05,
                vec![
                    ("train loss", BLUE, |h| h.train_loss),
                    ("val loss", RED, |h| h.val_loss),
                ],
            ),
            (
                "metrics",
                1.0,
                vec![
                    ("train bmca", BLUE, |h| h.train_bmca),
                    ("val bmca", RED, |h| h.val_bmca),
                    ("train mean precision", CYAN, |h| h.train_mean_precision),
                    ("val mean precision", MAGENTA, |h| h.val_mean_precision),
                ],
            ),
        ];
        for (area, (title, ymax, series)) in panels.iter().zip(plots) {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(1f64..n, 0f64..ymax)
                .map_err(|e| draw_err(path, e))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| draw_err(path, e))?;
            for (name, color, f) in series {
                chart
                    .draw_series(LineSeries::new(
                        history.iter().map(|h| (h.epoch as f64, f(h))),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| draw_err(path, e))?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| draw_err(path, e))?;
        }
        Ok(())
    })
}
