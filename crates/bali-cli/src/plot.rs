//! PNG figures drawn with plotters' bitmap backend: predicted vs true values with predictive
//! intervals, regression calibration curves, and training curves (e.g. test log-likelihood vs
//! iteration).
//!
//! Text uses DejaVu Sans embedded in the binary (`assets/DejaVuSans.ttf.gz`, Bitstream Vera
//! license, see `assets/README.md`) and registered with plotters' `ab_glyph` font table, so no
//! system font or fontconfig is needed at run time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT_GZ: &[u8] = include_bytes!("../assets/DejaVuSans.ttf.gz");
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 700);

/// A figure that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be decompressed or registered.
    #[error("cannot load the embedded plot font: {0}")]
    Font(String),
    /// Input slices that must have equal length do not.
    #[error("{figure}: {what} has {found} values, expected {expected}")]
    Length {
        /// Which figure.
        figure: &'static str,
        /// Which input.
        what: &'static str,
        /// Its length.
        found: usize,
        /// The length of the first input.
        expected: usize,
    },
    /// No finite value to plot.
    #[error("{figure}: no finite data to plot")]
    NoData {
        /// Which figure.
        figure: &'static str,
    },
    /// plotters failed while drawing or encoding the PNG.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// plotters' message.
        reason: String,
    },
}

/// Decompresses the embedded font once and registers it for the families plotters asks for.
fn ensure_font() -> Result<(), PlotError> {
    static BYTES: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = BYTES
                .get_or_init(|| {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(FONT_GZ)
                        .read_to_end(&mut out)
                        .map(|_| out)
                        .map_err(|e| e.to_string())
                })
                .as_ref()
                .map_err(Clone::clone)?;
            for family in [FONT, "serif", "monospace"] {
                plotters::style::register_font(family, FontStyle::Normal, bytes)
                    .map_err(|_| "not a valid TrueType font".to_string())?;
            }
            Ok(())
        })
        .clone()
        .map_err(PlotError::Font)
}

fn draw_err(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |reason| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    }
}

/// `(min, max)` of the finite values, widened by 5 % (or by 0.5 when all are equal).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    Some((lo - pad, hi + pad))
}

/// Tick label: up to 4 decimals without trailing zeros, scientific for tiny or huge values;
/// rounding residue of a zero tick (|v| < 1e-12, e.g. 1.1e-16) prints as 0.
fn fmt_tick(v: f64) -> String {
    let v = if v.abs() < 1e-12 { 0.0 } else { v };
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn check_len(
    figure: &'static str,
    what: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), PlotError> {
    if found == expected {
        Ok(())
    } else {
        Err(PlotError::Length {
            figure,
            what,
            found,
            expected,
        })
    }
}

/// Predicted vs true target: one point per example at `(y_true_i, pred_mean_i)` with a vertical
/// error bar from `pred_lo_i` to `pred_hi_i` (a predictive interval), and the line `y = x`.
/// All four slices have the same length; examples with a non-finite value are left out.
pub fn predicted_vs_true(
    path: &Path,
    y_true: &[f64],
    pred_mean: &[f64],
    pred_lo: &[f64],
    pred_hi: &[f64],
    title: &str,
) -> Result<(), PlotError> {
    const FIG: &str = "predicted_vs_true";
    let n = y_true.len();
    check_len(FIG, "pred_mean", pred_mean.len(), n)?;
    check_len(FIG, "pred_lo", pred_lo.len(), n)?;
    check_len(FIG, "pred_hi", pred_hi.len(), n)?;
    let keep: Vec<usize> = (0..n)
        .filter(|&i| {
            [y_true[i], pred_mean[i], pred_lo[i], pred_hi[i]]
                .iter()
                .all(|v| v.is_finite())
        })
        .collect();
    let (lo, hi) = padded_range(
        keep.iter()
            .flat_map(|&i| [y_true[i], pred_mean[i], pred_lo[i], pred_hi[i]]),
    )
    .ok_or(PlotError::NoData { figure: FIG })?;
    ensure_font()?;
    let err = draw_err(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("true value")
        .y_desc("predicted mean and interval")
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let bar_color = RGBColor(70, 110, 190);
    chart
        .draw_series(keep.iter().map(|&i| {
            ErrorBar::new_vertical(
                y_true[i],
                pred_lo[i].min(pred_hi[i]),
                pred_mean[i],
                pred_lo[i].max(pred_hi[i]),
                bar_color.mix(0.45).stroke_width(1),
                4,
            )
        }))
        .map_err(|e| err(e.to_string()))?
        .label("predictive interval")
        .legend(move |(x, y)| PathElement::new(vec![(x, y - 6), (x, y + 6)], bar_color));
    chart
        .draw_series(
            keep.iter()
                .map(|&i| Circle::new((y_true[i], pred_mean[i]), 3, bar_color.filled())),
        )
        .map_err(|e| err(e.to_string()))?
        .label("predicted mean")
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, bar_color.filled()));
    chart
        .draw_series(LineSeries::new(
            vec![(lo, lo), (hi, hi)],
            RED.stroke_width(2),
        ))
        .map_err(|e| err(e.to_string()))?
        .label("y = x")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Calibration curve of central predictive intervals: observed coverage against nominal level
/// (both in `[0, 1]`), with the diagonal of perfect calibration.
pub fn calibration_plot(path: &Path, levels: &[f64], observed: &[f64]) -> Result<(), PlotError> {
    const FIG: &str = "calibration_plot";
    check_len(FIG, "observed", observed.len(), levels.len())?;
    let pts: Vec<(f64, f64)> = levels
        .iter()
        .zip(observed)
        .map(|(&l, &o)| (l, o))
        .filter(|(l, o)| l.is_finite() && o.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(PlotError::NoData { figure: FIG });
    }
    ensure_font()?;
    let err = draw_err(path);
    let root = BitMapBackend::new(path, (700, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Calibration of predictive intervals", (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("nominal level of the central interval")
        .y_desc("observed coverage")
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.6).stroke_width(1),
        ))
        .map_err(|e| err(e.to_string()))?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
    let color = RGBColor(200, 60, 40);
    chart
        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("observed")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Line plot of several named series of `(x, y)` points (e.g. test log-likelihood vs
/// iteration), each in its own colour, with a legend. Non-finite points are left out.
pub fn curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    const FIG: &str = "curves";
    let clean: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            (
                name.as_str(),
                pts.iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect(),
            )
        })
        .collect();
    let all = || clean.iter().flat_map(|(_, p)| p.iter().copied());
    let (x0, x1) = padded_range(all().map(|p| p.0)).ok_or(PlotError::NoData { figure: FIG })?;
    let (y0, y1) = padded_range(all().map(|p| p.1)).ok_or(PlotError::NoData { figure: FIG })?;
    ensure_font()?;
    let err = draw_err(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (k, (name, pts)) in clean.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if pts.len() <= 60 {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(fmt_tick(50.0), "50");
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(-2.4), "-2.4");
        assert_eq!(fmt_tick(-0.00001), "-1.00e-5");
        assert_eq!(fmt_tick(0.0), "0");
    }

    #[test]
    fn embedded_font_registers() {
        ensure_font().unwrap();
        // plotters can now measure text with it: a longer string is wider.
        let font: FontDesc = (FONT, 20).into_font();
        let (w1, _) = font.box_size("ab").unwrap();
        let (w2, _) = font.box_size("abcdef").unwrap();
        assert!(w2 > w1 && w1 > 0, "{w1} {w2}");
    }

    #[test]
    fn text_is_rasterized_with_the_embedded_font() {
        ensure_font().unwrap();
        let (w, h) = (200u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.draw_text("Log-lik", &(FONT, 30).into_font().color(&BLACK), (10, 10))
                .unwrap();
            root.present().unwrap();
        }
        let dark = buf.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 100, "only {dark} dark pixels: no glyphs drawn");
    }

    #[test]
    fn length_mismatch_and_empty_data_are_errors() {
        let p = std::env::temp_dir().join("bali-plot-never-written.png");
        assert!(matches!(
            predicted_vs_true(&p, &[1.0, 2.0], &[1.0], &[0.0, 1.0], &[2.0, 3.0], "t"),
            Err(PlotError::Length {
                what: "pred_mean",
                found: 1,
                expected: 2,
                ..
            })
        ));
        assert!(matches!(
            curves(&p, "t", "x", "y", &[("a".into(), vec![(f64::NAN, 1.0)])]),
            Err(PlotError::NoData { .. })
        ));
        assert!(!p.exists());
    }
}
