//! Every output of the harness, behind one seam (ARCHITECTURE.md, "Outputs"): a
//! [`Report`] (a run or A/B with its comparison, or a bench) goes through the
//! list of [`EXPORTERS`], one small file per format:
//!
//! - `html.rs`: a self-contained `index.html` (inline CSS, charts as embedded PNG,
//!   the PNG files beside it);
//! - `markdown.rs`: `summary.md`, for a CI step summary;
//! - `junit.rs`: `junit.xml`, one test case per threshold, claim and run;
//! - `json.rs`: `bench.json`, a bench's verdict table as data;
//! - `openmetrics.rs`: `metrics.txt`, a run's figures in the OpenMetrics text format;
//! - `terminal.rs`: what a command prints.
//!
//! Rendering is apart from analysis: comparisons come from `compare`, claims from
//! `claims`; `context.rs` formats the numbers for the templates, `figures.rs`
//! chooses and draws the charts with `charts.rs`. A new format is one file here
//! and one line in [`EXPORTERS`].

pub mod charts;
mod context;
mod figures;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod openmetrics;
pub mod terminal;

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::compare::Comparison;
use crate::findings::BenchSummary;
use crate::result::ResultDoc;

pub use context::shown_target;

/// A run (one arm), an A/B (two arms and their comparison), or a comparison of
/// two separate runs (the baseline and the run).
pub struct RunReport<'a> {
    pub docs: &'a [ResultDoc],
    pub comparison: Option<&'a Comparison>,
    /// The result files the report was made from, as shown on the page.
    pub sources: &'a [String],
}

/// What is reported.
pub enum Report<'a> {
    Run(RunReport<'a>),
    Bench(&'a BenchSummary),
}

/// One output format.
pub trait Exporter: Sync {
    /// Writes to the terminal text rather than to the report directory.
    fn is_terminal(&self) -> bool {
        false
    }

    /// Adds this format of `report` to `out`: files into `out.dir`, terminal text
    /// to `out.terminal`. A format with nothing to say about this kind of report
    /// adds nothing.
    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String>;
}

/// Every format, in the order they are written (the HTML draws the charts).
pub static EXPORTERS: &[&dyn Exporter] =
    &[&html::Html, &markdown::Markdown, &junit::Junit, &json::Json, &openmetrics::OpenMetrics, &terminal::Terminal];

/// What the exporters produced.
#[derive(Debug, Default)]
pub struct Output {
    /// The report directory; `None`: terminal only.
    pub dir: Option<PathBuf>,
    /// Files written, by the exporter's name (`html`, `chart`, `markdown`, …).
    pub files: Vec<(&'static str, PathBuf)>,
    /// What the command prints.
    pub terminal: String,
}

impl Output {
    /// Writes `text` to `name` in the report directory.
    pub fn write(&mut self, exporter: &'static str, name: &str, text: &str) -> Result<PathBuf, String> {
        let dir = self.dir.as_ref().ok_or("no report directory")?;
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        self.files.push((exporter, path.clone()));
        Ok(path)
    }

    /// The first file written by `exporter`.
    pub fn file(&self, exporter: &str) -> Option<&PathBuf> {
        self.files.iter().find(|(e, _)| *e == exporter).map(|(_, p)| p)
    }
}

/// Where a report goes.
#[derive(Debug, Clone, Copy)]
pub struct Destinations<'a> {
    /// Write the file formats here.
    pub dir: Option<&'a Path>,
    /// Render the terminal text.
    pub terminal: bool,
}

/// Runs every exporter of [`EXPORTERS`] that `to` asks for.
pub fn export(report: &Report<'_>, to: Destinations<'_>) -> Result<Output, String> {
    if let Report::Run(r) = report {
        if r.docs.is_empty() && to.dir.is_some() {
            return Err("a report needs at least one result".into());
        }
    }
    if let Some(dir) = to.dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut out = Output { dir: to.dir.map(Path::to_path_buf), ..Output::default() };
    for exporter in EXPORTERS {
        let wanted = if exporter.is_terminal() { to.terminal } else { to.dir.is_some() };
        if wanted {
            exporter.export(report, &mut out)?;
        }
    }
    Ok(out)
}

/// The files of a run's report.
pub struct ReportFiles {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub junit: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// Writes the report files of `docs` (one per run or arm) and, for an A/B or a
/// baseline, `comparison`, into `out`.
pub fn write(
    docs: &[ResultDoc],
    comparison: Option<&Comparison>,
    sources: &[String],
    out: &Path,
) -> Result<ReportFiles, String> {
    let report = Report::Run(RunReport { docs, comparison, sources });
    let output = export(&report, Destinations { dir: Some(out), terminal: false })?;
    let file = |name: &str| output.file(name).cloned().ok_or_else(|| format!("no {name} file was written"));
    Ok(ReportFiles {
        html: file(html::NAME)?,
        markdown: file(markdown::NAME)?,
        junit: file(junit::NAME)?,
        charts: output.files.iter().filter(|(e, _)| *e == html::CHART).map(|(_, p)| p.clone()).collect(),
    })
}

/// The templates of every page, parsed once per process.
fn templates() -> Result<&'static minijinja::Environment<'static>, String> {
    static TEMPLATES: std::sync::OnceLock<Result<minijinja::Environment<'static>, String>> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(load_templates).as_ref().map_err(Clone::clone)
}

fn load_templates() -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        // One <head> (inline CSS) for every HTML page.
        ("head.html", include_str!("../../templates/head.html")),
        ("report.html", include_str!("../../templates/report.html")),
        ("junit.xml", include_str!("../../templates/junit.xml")),
        ("summary.md", include_str!("../../templates/summary.md")),
        ("bench.html", include_str!("../../templates/bench.html")),
        ("bench.md", include_str!("../../templates/bench.md")),
    ] {
        env.add_template(name, text).map_err(|e| e.to_string())?;
    }
    // Markdown is not HTML: no escaping there; HTML and XML escape every value.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".md") {
            minijinja::AutoEscape::None
        } else {
            minijinja::AutoEscape::Html
        }
    });
    Ok(env)
}

/// Renders template `name` with `ctx`.
pub(crate) fn render(name: &str, ctx: &impl serde::Serialize) -> Result<String, String> {
    let template = templates()?.get_template(name).map_err(|e| format!("template {name}: {e}"))?;
    template.render(ctx).map_err(|e| format!("template {name}: {e}"))
}

/// A file as base64, for embedding.
pub(crate) fn base64_file(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(STANDARD.encode(bytes))
}
