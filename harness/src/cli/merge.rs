//! `harness merge`: the results of one run's shards (`--shard I/N`, run on one or
//! many machines) as one result, judged and compared as a single run is.

use clap::Args;
use std::path::{Path, PathBuf};

use super::{
    bad, compare_options, finish_comparison, load_claims, print_terminal, run_code, write_report, CompareArgs, Fail,
};
use crate::merge::{self, ShardFile};
use crate::result::{AnyResult, ResultDoc};
use crate::runner::finish::{self, Ending, Judging};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The result files of every shard of one run (single-run or A/B results).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Where the merged result goes [default: beside the first, <its stem>-merged.json].
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Merge although shards are missing (the result names them; its rates are those
    /// of the shards given).
    #[arg(long)]
    pub allow_missing: bool,
    /// Also write the HTML/PNG/Markdown report into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// Shards that began further apart than this are said to have.
const MAX_START_SPREAD_MS: u64 = 1000;

fn read_shard(path: &Path) -> Result<ShardFile, Fail> {
    let arms = match AnyResult::read(path).map_err(bad)? {
        AnyResult::Single(doc) => vec![*doc],
        AnyResult::Ab(ab) => ab.arms,
    };
    Ok(ShardFile { name: path.display().to_string(), arms })
}

fn default_out(first: &Path) -> PathBuf {
    let stem = first.file_stem().and_then(|s| s.to_str()).unwrap_or("result");
    first.with_file_name(format!("{stem}-merged.json"))
}

/// The merged documents judged as one run: validity, warnings and thresholds.
fn judged(docs: Vec<ResultDoc>) -> Result<Vec<ResultDoc>, Fail> {
    let first = docs.first().ok_or_else(|| bad("nothing merged"))?;
    let judging = Judging::of_doc(first).map_err(|e| bad(format!("the results' thresholds do not parse: {e}")))?;
    let template = first
        .series
        .get(crate::series::ALL_TEXT)
        .and_then(|s| s.error_kinds.get(&crate::client::ErrorKind::Template).copied())
        .unwrap_or(0);
    let ending = Ending { interrupted: false, template_failures: template, first_error: None };
    let mut docs = finish::judge(docs, &judging, &ending);
    for d in &mut docs {
        if let Some(m) = d.metadata.merged.as_ref().filter(|m| m.start_spread_ms > MAX_START_SPREAD_MS) {
            d.run.warnings.push(format!(
                "the shards' measured parts began up to {:.1} s apart: the merged schedule is the requested rate only \
                 while all of them ran (start them together: --align-start)",
                m.start_spread_ms as f64 / 1000.0
            ));
        }
        if let Some(m) = d.metadata.merged.as_ref().filter(|m| !m.missing.is_empty()) {
            let missing: Vec<String> = m.missing.iter().map(|i| format!("{i}/{}", m.count)).collect();
            d.run.warnings.push(format!(
                "merged without shard(s) {}: this result holds {} of {} shards of the schedule, and its rates are theirs",
                missing.join(", "),
                m.shards.len(),
                m.count
            ));
        }
    }
    Ok(docs)
}

pub(super) fn merge(args: MergeArgs) -> Result<i32, Fail> {
    let MergeArgs { results, out, allow_missing, report, compare } = args;
    let claims = load_claims(&compare)?;
    let files = results.iter().map(|p| read_shard(p)).collect::<Result<Vec<_>, _>>()?;
    let docs = judged(merge::merge_shards(&files, allow_missing).map_err(bad)?)?;
    let out = out.unwrap_or_else(|| default_out(&results[0]));
    finish::write_docs(&out, &docs).map_err(|e| bad(format!("cannot write {}: {e}", out.display())))?;
    print_terminal(&docs, None)?;
    println!("merged: {} ({} shard files)", out.display(), files.len());
    let mut code = docs.iter().map(run_code).max().unwrap_or(crate::exit::PASS);
    let comparison = match docs.as_slice() {
        [a, b] => {
            let c = crate::compare::compare(a, b, true, &claims, &compare_options(&compare)).map_err(bad)?;
            code = code.max(finish_comparison(&c, &compare)?);
            Some(c)
        }
        _ => None,
    };
    if let Some(dir) = &report {
        write_report(&docs, comparison.as_ref(), &[out.display().to_string()], dir)?;
    }
    Ok(code)
}
