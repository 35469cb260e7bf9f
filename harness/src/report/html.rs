//! The HTML exporter: one self-contained `index.html` per report (inline CSS,
//! every chart embedded as a PNG and also written beside it as a file).

use super::{context, figures, Exporter, Output, Report};

pub const NAME: &str = "html";
/// The exporter name the chart files are listed under.
pub const CHART: &str = "chart";

pub struct Html;

impl Exporter for Html {
    fn export(&self, report: &Report<'_>, out: &mut Output) -> Result<(), String> {
        let dir = out.dir.clone().ok_or("the HTML report needs a directory")?;
        match report {
            Report::Run(r) => {
                let mut charts = Vec::new();
                for (path, title) in figures::run(r.docs, r.comparison, &dir)? {
                    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    charts.push((title, file, super::base64_file(&path)?));
                    out.files.push((CHART, path));
                }
                out.write(NAME, "index.html", &super::render("report.html", &context::run(r, &charts))?)?;
            }
            Report::Bench(s) => {
                let chart = figures::bench(s, &dir)?;
                let data = chart.map(|(path, data)| {
                    out.files.push((CHART, path));
                    data
                });
                out.write(NAME, "index.html", &super::render("bench.html", &context::bench(s, data))?)?;
            }
        }
        Ok(())
    }
}
