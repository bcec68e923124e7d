//! `lasagna plot`: training curves of one or more runs, or a sweep's bar chart,
//! as PNG or SVG (by the output's extension).

use clap::Args;
use lasagna_trainer::error::{Error, Result};
use lasagna_trainer::sweep::{read_csv, read_json, result_files, Row};
use lasagna_trainer::train::EpochMetrics;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Plot training curves or a sweep's results.
///
/// `lasagna plot a.json b.json --out curves.png` draws train (solid) and
/// validation (dashed) loss and accuracy per epoch, one colour per run.
/// `lasagna plot --bars sweep/ --out bars.png` compares a sweep's runs by
/// validation accuracy (a folder of run files, or its summary.csv).
/// The format follows the extension: .png or .svg.
#[derive(Args)]
pub struct PlotArgs {
    /// Metrics JSON files (`lasagna train --metrics`, or a sweep's run files).
    #[arg(value_name = "METRICS.json", required_unless_present = "bars")]
    pub files: Vec<PathBuf>,
    /// A sweep folder or its summary.csv: draw a bar chart of validation accuracy instead.
    #[arg(long, value_name = "DIR|CSV", conflicts_with = "files")]
    pub bars: Option<PathBuf>,
    /// Output image: .png or .svg.
    #[arg(long, value_name = "FILE", default_value = "curves.png")]
    pub out: PathBuf,
    /// Chart title [default: what is drawn].
    #[arg(long)]
    pub title: Option<String>,
}

/// The embedded font (DejaVu Sans, Latin-1 subset; licence next to it), so
/// PNG text needs no system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() -> Result<()> {
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| Error::config("plot font", "the embedded font did not load"))
}

/// Colour-blind-safe palette (Okabe & Ito, 2008), cycled.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

fn draw_err(out: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::ModelFile {
        path: out.to_path_buf(),
        reason: format!("drawing failed: {reason}"),
    }
}

enum Format {
    Png,
    Svg,
}

fn format_of(out: &Path) -> Result<Format> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(Error::config(
            "--out",
            format!("{}: the extension must be .png or .svg", out.display()),
        )),
    }
}

/// A picture that can be drawn on any plotters backend.
trait Picture {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Draws in memory, then writes `out` in one atomic step: a failed or
/// interrupted plot never leaves half an image over the last one.
fn save(out: &Path, size: (u32, u32), pic: &impl Picture) -> Result<()> {
    let fmt = format_of(out)?;
    register_font()?;
    let err = draw_err(out);
    let bytes = match fmt {
        Format::Png => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            {
                let area = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                pic.draw(&area).map_err(&err)?;
                area.present().map_err(|e| err(e.to_string()))?;
            }
            let mut png = Vec::new();
            image::ImageEncoder::write_image(
                image::codecs::png::PngEncoder::new(&mut png),
                &rgb,
                size.0,
                size.1,
                image::ColorType::Rgb8,
            )
            .map_err(|e| err(format!("PNG encoding: {e}")))?;
            png
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                pic.draw(&area).map_err(&err)?;
                area.present().map_err(|e| err(e.to_string()))?;
            }
            svg.into_bytes()
        }
    };
    Ok(lasagna_files::write_atomic(out, &bytes)?)
}

/// Refuses, before reading any input, an --out that cannot be written,
/// that names one of the inputs, or that another process is writing; the
/// lock is held until the chart is written. Its folder is created.
fn claim_out(a: &PlotArgs) -> Result<Vec<lasagna_files::Lock>> {
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| lasagna_files::Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    for input in a.files.iter().chain(a.bars.iter().filter(|b| b.is_file())) {
        lasagna_files::check_distinct(&[("an input", input), ("--out", &a.out)])?;
    }
    Ok(lasagna_files::claim(&[("--out", &a.out)])?)
}

/// One run's curves.
struct Run {
    label: String,
    epochs: Vec<EpochMetrics>,
}

fn load_run(path: &Path) -> Result<Run> {
    let v = read_json(path)?;
    let bad = |reason: String| Error::BadData {
        path: path.to_path_buf(),
        reason: format!(
            "{reason}. HINT: pass files written by `lasagna train --metrics` or `lasagna sweep`"
        ),
    };
    if let Some(list) = v.get("epochs").and_then(Value::as_array) {
        check_values(path, list)?;
    }
    let epochs: Vec<EpochMetrics> = match v.get("epochs") {
        Some(e) => serde_json::from_value(e.clone())
            .map_err(|e| bad(format!("`epochs` is not a list of epoch metrics: {e}")))?,
        None => return Err(bad("no `epochs` list".into())),
    };
    let label = v
        .pointer("/sweep/name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            path.file_stem()
                .map_or("run".into(), |s| s.to_string_lossy().into_owned())
        });
    Ok(Run { label, epochs })
}

/// Refuses what a chart cannot show, naming the file, the epoch and the
/// field: a loss or accuracy that is null (how JSON writes NaN) or beyond
/// `f32` (the trainer writes `f32`; 1e308 would read back as infinity), and
/// an accuracy outside [0, 1]. A null validation value means no validation set.
fn check_values(path: &Path, epochs: &[Value]) -> Result<()> {
    for (i, e) in epochs.iter().enumerate() {
        let epoch = e
            .get("epoch")
            .and_then(Value::as_u64)
            .unwrap_or(i as u64 + 1);
        for field in ["train_loss", "train_acc", "val_loss", "val_acc", "lr"] {
            let bad = |what: String| Error::BadData {
                path: path.to_path_buf(),
                reason: format!(
                    "epoch {epoch}: `{field}` {what}, which a chart cannot show. HINT: \
                     a diverged run has no curve; retrain it (e.g. with a lower --lr) \
                     or leave its file out"
                ),
            };
            let x = match e.get(field) {
                Some(Value::Null) if field.starts_with("val_") => continue,
                Some(Value::Null) => return Err(bad("is null (NaN when written)".into())),
                Some(v) => match v.as_f64() {
                    Some(x) => x,
                    None => continue, // serde names the wrong type below
                },
                None => continue,
            };
            if x.is_nan() || x.abs() > f32::MAX as f64 {
                return Err(bad(format!("is {x:e}, beyond f32's ±3.4e38")));
            }
            if field.ends_with("_acc") && !(0.0..=1.0).contains(&x) {
                return Err(bad(format!("is {x}, outside [0, 1]")));
            }
        }
    }
    Ok(())
}

/// Tick labels for values up to `max` in magnitude: two decimals where they
/// read well, scientific notation where two decimals would show only zeros
/// or a dozen digits.
fn tick_format(max: f64) -> impl Fn(&f64) -> String {
    let scientific = max >= 1e4 || (max > 0.0 && max < 1e-2);
    move |y| {
        if scientific {
            format!("{y:.1e}")
        } else {
            format!("{y:.2}")
        }
    }
}

/// What one panel of the curves shows.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    /// (train, val) of an epoch.
    value: &'a dyn Fn(&EpochMetrics) -> (f32, Option<f32>),
    y_range: std::ops::Range<f64>,
    y_fmt: &'a dyn Fn(&f64) -> String,
    /// Where the legend goes; `None` for no legend.
    legend_pos: Option<SeriesLabelPosition>,
}

struct Curves {
    runs: Vec<Run>,
    title: String,
}

type Res = std::result::Result<(), String>;

fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

impl Curves {
    fn max_epoch(&self) -> usize {
        self.runs
            .iter()
            .flat_map(|r| r.epochs.iter().map(|m| m.epoch))
            .max()
            .unwrap_or(1)
    }

    /// One panel of the curves.
    fn panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, p: Panel<'_>) -> Res {
        let Panel {
            caption,
            y_desc,
            value,
            y_range,
            y_fmt,
            legend_pos,
        } = p;
        let max_epoch = self.max_epoch() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(caption, font(22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.7..max_epoch + 0.3, y_range)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(self.max_epoch().min(12) + 1)
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 && *x >= 1.0 {
                    format!("{}", x.round())
                } else {
                    String::new()
                }
            })
            .y_label_formatter(y_fmt)
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e2s)?;
        for (i, run) in self.runs.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let train: Vec<(f64, f64)> = run
                .epochs
                .iter()
                .map(|m| (m.epoch as f64, value(m).0 as f64))
                .collect();
            let val: Vec<(f64, f64)> = run
                .epochs
                .iter()
                .filter_map(|m| value(m).1.map(|v| (m.epoch as f64, v as f64)))
                .collect();
            chart
                .draw_series(LineSeries::new(train.clone(), color.stroke_width(2)))
                .map_err(e2s)?
                .label(run.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            chart
                .draw_series(train.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(e2s)?;
            chart
                .draw_series(DashedLineSeries::new(
                    val.clone(),
                    8,
                    5,
                    color.stroke_width(2),
                ))
                .map_err(e2s)?;
            chart
                .draw_series(
                    val.iter()
                        .map(|&p| TriangleMarker::new(p, 5, color.filled())),
                )
                .map_err(e2s)?;
        }
        // Line styles, explained once.
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(e2s)?
            .label("train (solid, dots)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], grey.stroke_width(2))
            });
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(e2s)?
            .label("validation (dashed, triangles)")
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (8, 0)], grey.stroke_width(2))
                    + PathElement::new(vec![(14, 0), (24, 0)], grey.stroke_width(2))
            });
        let Some(legend_pos) = legend_pos else {
            return Ok(());
        };
        chart
            .configure_series_labels()
            .position(legend_pos)
            .label_font(font(15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(e2s)?;
        Ok(())
    }
}

impl Picture for Curves {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res {
        area.fill(&WHITE).map_err(e2s)?;
        let area = area.titled(&self.title, font(26)).map_err(e2s)?;
        let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
        let all = || self.runs.iter().flat_map(|r| r.epochs.iter());
        let max_loss = all()
            .flat_map(|m| [Some(m.train_loss), m.val_loss])
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0.0f32, f32::max) as f64;
        // Losses below zero (MSE cannot, a hand-made file can) stay on the chart.
        let min_loss = all()
            .flat_map(|m| [Some(m.train_loss), m.val_loss])
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0.0f32, f32::min) as f64;
        let loss_fmt = tick_format(max_loss.max(-min_loss));
        self.panel(
            &left,
            Panel {
                caption: "Loss",
                y_desc: "cross-entropy loss (nats)",
                value: &|m| (m.train_loss, m.val_loss),
                y_range: min_loss * 1.08..(max_loss * 1.08).max(1e-3),
                y_fmt: &loss_fmt,
                legend_pos: Some(SeriesLabelPosition::UpperRight),
            },
        )?;
        let min_acc = all()
            .flat_map(|m| [Some(m.train_acc), m.val_acc])
            .flatten()
            .filter(|v| v.is_finite())
            .fold(1.0f32, f32::min) as f64
            * 100.0;
        // Start at a round number below the worst accuracy, so small differences show.
        let lo = ((min_acc - 2.0) / 5.0).floor().max(0.0) * 5.0;
        self.panel(
            &right,
            Panel {
                caption: "Accuracy",
                y_desc: "accuracy (%)",
                value: &|m| (100.0 * m.train_acc, m.val_acc.map(|v| 100.0 * v)),
                y_range: lo..100.0,
                y_fmt: &|y| format!("{y:.0}"),
                legend_pos: None,
            },
        )
    }
}

/// One bar: name, validation accuracy (%), diagnosis.
struct Bars {
    runs: Vec<(String, f64, String)>,
    title: String,
}

fn verdict_color(v: &str) -> RGBColor {
    match v {
        "healthy" => PALETTE[0],
        "overfitting" => PALETTE[1],
        "underfitting" => PALETTE[4],
        "flat_loss" | "oscillating_loss" | "non_finite_loss" => PALETTE[3],
        _ => RGBColor(150, 150, 150),
    }
}

impl Picture for Bars {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res {
        area.fill(&WHITE).map_err(e2s)?;
        let n = self.runs.len() as i32;
        // Best on top: plotters' y grows upwards, so the last index is drawn highest.
        let ordered: Vec<&(String, f64, String)> = self.runs.iter().rev().collect();
        let min = self.runs.iter().map(|r| r.1).fold(100.0, f64::min);
        let max = self.runs.iter().map(|r| r.1).fold(0.0, f64::max);
        let lo = ((min - 1.0) / 2.0).floor().max(0.0) * 2.0;
        let hi = (max + (max - lo) * 0.15).min(100.5).max(lo + 1.0);
        let longest = self.runs.iter().map(|r| r.0.len()).max().unwrap_or(8) as u32;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, font(24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(20 + 9 * longest)
            .build_cartesian_2d(lo..hi, (0..n - 1).into_segmented())
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("validation accuracy (%)")
            .y_labels(self.runs.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => ordered
                    .get(*i as usize)
                    .map_or(String::new(), |r| r.0.clone()),
                _ => String::new(),
            })
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e2s)?;
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .baseline(lo)
                    .margin(3)
                    .style_func(|y, _| match y {
                        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => ordered
                            .get(*i as usize)
                            .map_or(BLACK.filled(), |r| verdict_color(&r.2).filled()),
                        SegmentValue::Last => BLACK.filled(),
                    })
                    .data(ordered.iter().enumerate().map(|(i, r)| (i as i32, r.1))),
            )
            .map_err(e2s)?;
        chart
            .draw_series(ordered.iter().enumerate().map(|(i, r)| {
                Text::new(
                    format!(" {:.2} %", r.1),
                    (r.1, SegmentValue::CenterOf(i as i32)),
                    font(14).pos(Pos::new(HPos::Left, VPos::Center)),
                )
            }))
            .map_err(e2s)?;
        let mut verdicts: Vec<&str> = self.runs.iter().map(|r| r.2.as_str()).collect();
        verdicts.sort();
        verdicts.dedup();
        for v in verdicts {
            let c = verdict_color(v);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, SegmentValue<i32>), i32>>())
                .map_err(e2s)?
                .label(v.to_string())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(font(15))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(e2s)?;
        Ok(())
    }
}

fn bars_input(src: &Path) -> Result<Vec<(String, f64, String)>> {
    let runs: Vec<(String, Option<f32>, String)> = if src.is_dir() {
        let mut out = Vec::new();
        for p in result_files(src)? {
            let v = read_json(&p)?;
            if v.get("sweep").is_none() {
                continue;
            }
            let r = Row::from_json(&p, &v)?;
            out.push((r.name, r.val_acc, r.diagnosis));
        }
        out
    } else {
        let text = lasagna_trainer::read::text_file(src, lasagna_trainer::read::MAX_TEXT_BYTES)?;
        read_csv(src, &text)?
    };
    let mut runs: Vec<(String, f64, String)> = runs
        .into_iter()
        .filter_map(|(n, a, d)| a.map(|a| (n, 100.0 * a as f64, d)))
        .collect();
    if runs.is_empty() {
        return Err(Error::BadData {
            path: src.to_path_buf(),
            reason: "no runs with a validation accuracy. HINT: pass a `lasagna sweep` --out folder or its summary.csv".into(),
        });
    }
    runs.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(runs)
}

pub fn run(a: PlotArgs) -> Result<()> {
    format_of(&a.out)?;
    let _locks = claim_out(&a)?;
    if let Some(src) = &a.bars {
        let runs = bars_input(src)?;
        let h = 110 + 30 * runs.len() as u32;
        let title = a
            .title
            .clone()
            .unwrap_or_else(|| format!("Validation accuracy of {} runs", runs.len()));
        save(&a.out, (1100, h.max(320)), &Bars { runs, title })?;
    } else {
        let mut runs = Vec::new();
        for f in &a.files {
            let r = load_run(f)?;
            if r.epochs.is_empty() {
                eprintln!("warning: {} has no finished epoch; left out", f.display());
                continue;
            }
            runs.push(r);
        }
        if runs.is_empty() {
            return Err(Error::config(
                "plot",
                "none of the files has a finished epoch",
            ));
        }
        let title = a.title.clone().unwrap_or_else(|| {
            if runs.len() == 1 {
                format!("Training curves: {}", runs[0].label)
            } else {
                format!("Training curves of {} runs", runs.len())
            }
        });
        save(&a.out, (1400, 600), &Curves { runs, title })?;
    }
    println!("wrote {}", a.out.display());
    Ok(())
}
