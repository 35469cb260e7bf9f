//! The report's charts, drawn with plotters into PNG files. Text uses DejaVu Sans
//! compiled into the binary, so charts look the same on every machine and need no
//! system fonts.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 420);
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/DejaVuSans.ttf"))
                .map_err(|_| "the embedded font does not load".to_owned())
        })
        .clone()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn canvas(path: &Path) -> Result<Area<'_>, String> {
    ensure_font()?;
    let area = BitMapBackend::new(path, SIZE).into_drawing_area();
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    Ok(area)
}

/// A named line of (x, y) points.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed look for secondary lines (raw latency): drawn thinner.
    pub thin: bool,
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// x on a log scale (the percentile curve's 1 / (1 − p) axis).
    pub x_log: bool,
    pub lines: Vec<Line>,
}

fn bounds(lines: &[Line], pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in lines.iter().flat_map(|l| l.points.iter()) {
        let v = pick(p);
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi)
}

pub fn line_chart(path: &Path, c: &LineChart) -> Result<(), String> {
    let area = canvas(path)?;
    let (x0, x1) = bounds(&c.lines, |p| p.0);
    let (_, y1) = bounds(&c.lines, |p| p.1);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut builder = ChartBuilder::on(&area);
    builder.caption(c.title, (FONT, 22)).margin(12).x_label_area_size(44).y_label_area_size(64);
    let style = |i: usize, thin: bool| PALETTE[i % PALETTE.len()].stroke_width(if thin { 1 } else { 2 });
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(c.x_label)
                .y_desc(c.y_label)
                .label_style((FONT, 14))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, line) in c.lines.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(line.points.iter().copied(), style(i, line.thin)))
                    .map_err(|e| err(&e))?
                    .label(line.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT, 14))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if c.x_log {
        draw!(builder
            .build_cartesian_2d((x0.max(1.0)..x1.max(10.0)).log_scale(), 0.0..y1 * 1.08)
            .map_err(|e| err(&e))?);
    } else {
        draw!(builder.build_cartesian_2d(x0..x1, 0.0..y1 * 1.08).map_err(|e| err(&e))?);
    }
    area.present().map_err(|e| err(&e))
}

/// One bar, optionally with a confidence interval.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub ci: Option<(f64, f64)>,
    /// Index into the palette (groups share a colour).
    pub color: usize,
}

pub fn bar_chart(path: &Path, title: &str, y_label: &str, bars: &[Bar]) -> Result<(), String> {
    let area = canvas(path)?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for b in bars {
        let (l, h) = b.ci.unwrap_or((b.value, b.value));
        lo = lo.min(b.value).min(l);
        hi = hi.max(b.value).max(h);
    }
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let n = bars.len().max(1);
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(&area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n as f64, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.26 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let color = PALETTE[b.color % PALETTE.len()];
            Rectangle::new([(i as f64 + 0.2, 0.0), (i as f64 + 0.8, b.value)], color.mix(0.8).filled())
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            b.ci.map(|(l, h)| ErrorBar::new_vertical(i as f64 + 0.5, l, b.value, h, BLACK.stroke_width(2), 12))
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(vec![(0.0, 0.0), (n as f64, 0.0)], BLACK.stroke_width(1))))
        .map_err(|e| err(&e))?;
    area.present().map_err(|e| err(&e))
}
