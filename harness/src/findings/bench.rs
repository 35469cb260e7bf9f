//! What a bench found, as data: per A/B the verdict rows (p50 and p99 change with
//! their CIs per series), validity, errors, stale reads and claims; for the whole
//! bench its environment and validity. Written as `bench.json` and rendered by
//! the exporters in `report/`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ranking::{Prices, Ranking};
use super::strategies::{FigureSource, ProfileSummary, Staleness, StrategyInfo};
use crate::answers::{AnswerTally, AnswersDoc};
use crate::claims::{ClaimVerdict, Verdict};
use crate::compare::{Comparison, MetricChange};
use crate::recorder::Ops;
use crate::result::{self, Measurement, ResultDoc, Status};
use crate::series::SeriesKey;
use crate::stats::Metric;

pub const BENCH_SCHEMA: &str = "cache-bench/bench/v1";

/// Whether an A/B of the bench can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbStatus {
    Valid,
    Invalid,
    Interrupted,
}

impl AbStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AbStatus::Valid => "valid",
            AbStatus::Invalid => "invalid",
            AbStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_valid(self) -> bool {
        self == AbStatus::Valid
    }
}

impl PartialEq<&str> for AbStatus {
    fn eq(&self, text: &&str) -> bool {
        self.as_str() == *text
    }
}

impl fmt::Display for AbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One series of one A/B in the verdict table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub series: SeriesKey,
    pub count_a: u64,
    pub count_b: u64,
    /// Milliseconds, A and B.
    #[serde(with = "crate::nullable")]
    pub p50_a: f64,
    #[serde(with = "crate::nullable")]
    pub p50_b: f64,
    pub p50: MetricChange,
    #[serde(with = "crate::nullable")]
    pub p99_a: f64,
    #[serde(with = "crate::nullable")]
    pub p99_b: f64,
    pub p99: MetricChange,
    /// The p50 change survives the Benjamini–Hochberg correction over the run's
    /// series (the per-tag table is exploratory).
    #[serde(default)]
    pub fdr_significant: bool,
    pub summary: String,
    /// The CIs' confidence (0.95; less wide per look under `--until-decided`).
    #[serde(default = "ninety_five")]
    pub confidence: f64,
}

fn ninety_five() -> f64 {
    0.95
}

/// One A/B of the bench: a scenario (cache off vs on) or a layer alone (off vs only it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbSummary {
    /// `auth`, `layer bot`, … (`auth [modelled: kv-cold]` under a profile).
    pub name: String,
    /// `measured`, or `modelled: <profile>`.
    #[serde(default)]
    pub measurement: Measurement,
    /// Backend operations of every successful request, per arm (`x-ops`).
    #[serde(default, skip_serializing_if = "Ops::is_empty")]
    pub ops_a: Ops,
    #[serde(default, skip_serializing_if = "Ops::is_empty")]
    pub ops_b: Ops,
    pub scenario: String,
    /// The layer for an ablation run.
    pub layer: Option<String>,
    /// The cache strategy of both arms (`--strategies`); `None`: the worker's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Cache outcomes of arm B's requests (layer → outcome → count).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cache_b: crate::recorder::CacheOutcomes,
    /// Arm B's cache outcomes per user-activity band (its tag, e.g. `users-1-10`
    /// → layer → outcome → count), when the users are picked by a Zipf law.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cache_b_bands: std::collections::BTreeMap<String, crate::recorder::CacheOutcomes>,
    /// Arm B's read-backs (reads after a write that must show it), and the stale ones.
    #[serde(default)]
    pub read_backs_b: u64,
    #[serde(default)]
    pub stale_reads_b: u64,
    /// The A/A control: the same arm on both sides, in the A/Bs' design.
    #[serde(default)]
    pub control: bool,
    /// A control pooled from this many control runs (`--controls N`); 0: one run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pooled: u32,
    /// Fresh isolates: one iteration per restart of the runtime (`cold-start`).
    #[serde(default)]
    pub cold_start: bool,
    /// Seconds of measured traffic (both arms ran in it, interleaved).
    #[serde(default)]
    pub measured_s: f64,
    pub a: String,
    pub b: String,
    pub status: AbStatus,
    pub invalid_reasons: Vec<String>,
    pub warnings: Vec<String>,
    pub requests: u64,
    pub errors: u64,
    pub stale_reads: u64,
    pub thresholds_failed: Vec<String>,
    pub rows: Vec<Row>,
    /// How often the two arms answered differently, pair by pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<AnswersDoc>,
    /// Claims measured in this run (not-measured ones left out).
    pub claims: Vec<ClaimVerdict>,
    /// Relative to the bench directory.
    pub report: Option<String>,
    pub result: String,
}

impl AbSummary {
    /// A scenario's A/B under traffic: not a layer run, the control or cold starts,
    /// and (with `--strategies`) the worker's default strategy only: the others are
    /// ranked, not judged.
    pub fn is_warm_ab(&self) -> bool {
        self.layer.is_none()
            && !self.control
            && !self.cold_start
            && self.strategy.as_deref().is_none_or(|s| s == bench_seed::strategies::DEFAULT)
    }

    /// The pairs of every request: compared and answered differently.
    pub fn answers_all(&self) -> Option<&AnswerTally> {
        self.answers.as_ref().and_then(|a| a.series.get(crate::series::ALL_TEXT))
    }

    /// Whether the arms answered differently in any compared pair.
    pub fn wrong_answers(&self) -> bool {
        self.answers_all().is_some_and(|t| t.mismatched > 0)
    }

    /// Arm B's hit ratio over the lookups of every layer ("–" without any),
    /// then per user-activity band: "83 % (users-1-10 97 %, users-11-100 85 %)".
    pub fn hit_words(&self) -> String {
        let ratio = |cache| super::ranking::hit_ratio(cache, None).map(|h| format!("{:.0} %", 100.0 * h));
        let Some(all) = ratio(&self.cache_b) else { return "–".to_owned() };
        // By rank, not as text: users-11-100 before users-101-300.
        let mut bands: Vec<(&String, _)> = self.cache_b_bands.iter().collect();
        bands.sort_by_key(|(band, _)| crate::users::band_start(band));
        let bands: Vec<String> =
            bands.into_iter().filter_map(|(band, cache)| ratio(cache).map(|h| format!("{band} {h}"))).collect();
        if bands.is_empty() {
            all
        } else {
            format!("{all} ({})", bands.join(", "))
        }
    }

    /// The row of every request, the run's headline.
    pub fn all_row(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.series.is_all() && !r.series.is_server_side())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSummary {
    pub schema: String,
    pub started_at: String,
    pub wall_s: f64,
    /// `local wrangler dev` or `deployed`.
    pub mode: String,
    pub environment: String,
    pub target_on: String,
    pub target_off: String,
    pub quick: bool,
    pub harness_version: String,
    pub worker_version: Option<String>,
    pub git_revision: Option<String>,
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub notes: Vec<String>,
    pub runs: Vec<AbSummary>,
    /// The measurements the runs were made under, in order (`measured` and/or
    /// `modelled: <profile>`).
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    /// The latency profiles used and every figure they use, with its source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<FigureSource>,
    /// `--strategies`: each scenario's ranking, computed once from the runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rankings: Vec<Ranking>,
    /// `--strategies`: each ranking's tied leaders re-run against each other
    /// in one interleaved run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub head_to_head: Vec<super::HeadToHead>,
    /// The prices the rankings' costs were computed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<Prices>,
    /// `--strategies`: the strategies ranked, as the worker describes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<StrategyInfo>,
    /// Their staleness probes, per measurement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staleness: Vec<Staleness>,
    /// How the arms were run (crossed, or tied with an A/A control), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<String>,
    /// What the target offered besides plain HTTP (`findings::capabilities`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<super::Capability>,
}

impl BenchSummary {
    /// A recipe's bench that has not run anything yet: the target named as the
    /// recipe describes it, never as this project's worker.
    pub fn begin_recipe(started_at: String, recipe: &crate::recipe::Recipe, quick: bool) -> BenchSummary {
        BenchSummary {
            mode: format!("recipe: {} ({})", recipe.name, recipe.file.display()),
            environment: format!(
                "{}. {}",
                recipe.describes.trim_end_matches('.'),
                crate::target::environment(crate::result::TargetKind::Http, true)
            ),
            ..BenchSummary::begin(started_at, true, quick)
        }
    }

    /// A bench that has not run anything yet: invalid until runs are added.
    pub fn begin(started_at: String, local: bool, quick: bool) -> BenchSummary {
        BenchSummary {
            schema: BENCH_SCHEMA.to_owned(),
            started_at,
            wall_s: 0.0,
            mode: if local { "local wrangler dev".into() } else { "deployed".into() },
            environment: environment_statement(local).to_owned(),
            target_on: "–".into(),
            target_off: "–".into(),
            quick,
            harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            worker_version: None,
            git_revision: result::git_revision(),
            valid: false,
            invalid_reasons: Vec::new(),
            notes: Vec::new(),
            runs: Vec::new(),
            measurements: Vec::new(),
            profiles: Vec::new(),
            figures: Vec::new(),
            strategies: Vec::new(),
            staleness: Vec::new(),
            design: None,
            capabilities: Vec::new(),
            rankings: Vec::new(),
            head_to_head: Vec::new(),
            prices: None,
        }
    }

    /// Exit code: 3 invalid or interrupted, 1 a threshold failed, the arms of an
    /// A/B of the worker's own strategy answered differently (unless
    /// `allow_answer_changes`; the other strategies are ranked, not gated), or,
    /// with `require_claims`, a claim did not hold; 0 otherwise. A refuted claim
    /// alone is a finding, not a failure.
    pub fn exit_code(&self, require_claims: bool, allow_answer_changes: bool) -> i32 {
        if !self.valid {
            return crate::exit::UNREACHABLE_OR_INVALID;
        }
        let thresholds = self.runs.iter().any(|r| !r.thresholds_failed.is_empty());
        let claims = require_claims && self.headline_claims().iter().any(|(_, c)| !c.verdict.holds());
        let own = |r: &&AbSummary| r.strategy.as_deref().is_none_or(|s| s == bench_seed::strategies::DEFAULT);
        let answers = !allow_answer_changes && self.runs.iter().filter(own).any(AbSummary::wrong_answers);
        if thresholds || claims || answers {
            crate::exit::GATE_FAILED
        } else {
            crate::exit::PASS
        }
    }

    /// Each claim judged on the run that isolates what it is about: a claim with
    /// a layer on that layer's run, any other on the first scenario run that
    /// measured it.
    /// Under every measurement.
    pub fn headline_claims(&self) -> Vec<(&str, &ClaimVerdict)> {
        self.groups().into_iter().flat_map(|m| self.headline_claims_under(&m)).collect()
    }

    /// The measurements in the order they ran (those of the runs when the list
    /// is missing, as in files of older versions).
    pub fn groups(&self) -> Vec<Measurement> {
        let mut out = self.measurements.clone();
        for r in &self.runs {
            if !out.contains(&r.measurement) {
                out.push(r.measurement.clone());
            }
        }
        out
    }

    fn runs_under(&self, m: &Measurement) -> impl Iterator<Item = &AbSummary> + '_ {
        let m = m.clone();
        self.runs.iter().filter(move |r| r.measurement == m)
    }

    /// Under one measurement.
    pub fn headline_claims_under(&self, m: &Measurement) -> Vec<(&str, &ClaimVerdict)> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let layer_runs = self.runs_under(m).filter(|r| r.layer.is_some());
        let scenario_runs = self.runs_under(m).filter(|r| r.layer.is_none() && !r.control && !r.cold_start);
        for run in layer_runs.chain(scenario_runs) {
            for c in &run.claims {
                if seen.insert(c.name.clone()) {
                    out.push((run.name.as_str(), c));
                }
            }
        }
        out
    }

    /// The full cache-on/off A/B's verdict on a claim headlined from a layer run:
    /// the first scenario run under the same measurement that measured it.
    pub fn full_ab_verdict(&self, claim: &str, m: &Measurement) -> Option<(&str, &ClaimVerdict)> {
        self.runs_under(m)
            .filter(|r| r.layer.is_none() && !r.control)
            .find_map(|r| r.claims.iter().find(|c| c.name == claim).map(|c| (r.name.as_str(), c)))
    }

    /// The (first) A/A control run, if the bench ran one.
    pub fn control(&self) -> Option<&AbSummary> {
        self.runs.iter().find(|r| r.control)
    }
}

/// The rows of the verdict table: every request, then each tag and its
/// server-side timings (cache-outcome and per-step series stay in the run's report).
/// The milliseconds are the comparison's own (the evidence its change and CI
/// come from, failures ranked slowest), never the display histograms beside it.
pub fn rows(c: &Comparison) -> Vec<Row> {
    c.series
        .iter()
        .filter(|s| s.series.is_headline())
        .filter_map(|s| {
            let (p50, p99) = (s.metric(Metric::P50)?, s.metric(Metric::P99)?);
            Some(Row {
                series: s.series.clone(),
                count_a: s.count_a,
                count_b: s.count_b,
                p50_a: p50.a,
                p50_b: p50.b,
                p50: p50.clone(),
                p99_a: p99.a,
                p99_b: p99.b,
                p99: p99.clone(),
                fdr_significant: s.fdr_significant,
                summary: s.summary.clone(),
                confidence: s.confidence,
            })
        })
        .collect()
}

/// The A/A control's p50 floor for `series`: the largest change its 95 % CI
/// allows (of that series, else of every request), as a fraction.
fn floor_of(control: &AbSummary, series: &str) -> Option<f64> {
    let row =
        control.rows.iter().find(|r| !r.series.is_server_side() && r.series == series).or_else(|| control.all_row())?;
    let floor = row.p50.ci_low.abs().max(row.p50.ci_high.abs());
    floor.is_finite().then_some(floor)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Every claim is held to the A/A control of its own scenario and measurement
/// (the same arm on both sides, in the A/Bs' design): when the
/// control itself called a difference of all requests' p50, the design's CIs are
/// not calibrated on this machine at this time and no claim of that scenario gets
/// a verdict ("not calibrated"); otherwise a claim whose effect lies within the
/// control's CI is not called. Claims of a scenario without a valid control keep
/// their verdicts and say so.
pub fn hold_to_control(runs: &mut [AbSummary]) {
    let controls: Vec<AbSummary> = runs.iter().filter(|r| r.control && r.status.is_valid()).cloned().collect();
    for run in runs.iter_mut().filter(|r| !r.control) {
        // Repeated controls: the one pooled from most runs; among equals (no
        // pooled one), one that called a difference.
        let own = controls
            .iter()
            .filter(|c| c.scenario == run.scenario && c.measurement == run.measurement)
            .max_by_key(|c| (c.pooled, control_called(c).is_some()));
        match own {
            Some(control) => hold_to(control, run),
            None => {
                for claim in run.claims.iter_mut().filter(|c| c.verdict.holds()) {
                    claim.reason.push_str(&format!(
                        "; no valid A/A control of scenario {} checked this run's calibration",
                        run.scenario
                    ));
                }
            }
        }
    }
}

/// What an A/A control called, if anything: all requests' p50 faster or slower.
fn control_called(control: &AbSummary) -> Option<&Row> {
    control.all_row().filter(|r| r.p50.direction.is_called())
}

fn hold_to(control: &AbSummary, run: &mut AbSummary) {
    if let Some(row) = control_called(control) {
        for claim in run.claims.iter_mut().filter(|c| is_judged(c.verdict)) {
            claim.reason = format!(
                "the A/A control of scenario {} (the same arm on both sides) called a difference, {} at p50: \
                 this design's intervals are not calibrated on this machine now, so no verdict; rerun the bench; \
                 the latency alone said {}: {}",
                run.scenario,
                row.p50,
                claim.verdict.as_str(),
                claim.reason
            );
            claim.verdict = Verdict::NotCalibrated;
        }
        return;
    }
    for claim in &mut run.claims {
        let Some(primary) = claim.metrics.first() else { continue };
        let Some(floor) = floor_of(control, &claim.series) else { continue };
        let called = matches!(claim.verdict, Verdict::Confirmed | Verdict::Exceeded | Verdict::Short);
        if called && primary.improvement.abs() <= floor * 100.0 {
            claim.reason = format!(
                "{:.1} % faster at {} is within the A/A control's ±{:.1} % (the same arm against itself): \
                 not called; {}",
                primary.improvement,
                primary.metric.name(),
                floor * 100.0,
                claim.reason
            );
            claim.verdict = Verdict::Inconclusive;
        }
    }
}

/// A verdict the latencies gave (not one held back for answers, failures, or
/// nothing measured): what an uncalibrated control takes away.
fn is_judged(v: Verdict) -> bool {
    matches!(v, Verdict::Confirmed | Verdict::Exceeded | Verdict::Short | Verdict::Refuted | Verdict::Inconclusive)
}

pub fn status_of(docs: &[&ResultDoc]) -> AbStatus {
    if docs.iter().any(|d| d.run.status == Status::Interrupted) {
        AbStatus::Interrupted
    } else if docs.iter().any(|d| d.run.status == Status::Invalid) {
        AbStatus::Invalid
    } else {
        AbStatus::Valid
    }
}

/// The bench's targets are this project's worker: local `wrangler dev`, or deployed.
fn environment_statement(local: bool) -> &'static str {
    crate::target::environment(crate::result::TargetKind::BenchWorker, local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Direction, MetricChange};
    use crate::claims::MetricVerdict;

    fn change(metric: Metric, lo: f64, hi: f64) -> MetricChange {
        let mid = (lo + hi) / 2.0;
        MetricChange {
            metric,
            a: 10.0,
            b: 10.0 * (1.0 + mid),
            change: mid,
            ci_low: lo,
            ci_high: hi,
            direction: Direction::of(mid, lo, hi, 0.02),
            enough_samples: true,
            at_resolution: false,
        }
    }

    fn run(name: &str, scenario: &str, control: bool, p50: (f64, f64), claims: Vec<ClaimVerdict>) -> AbSummary {
        let row = Row {
            series: SeriesKey::all(),
            count_a: 1000,
            count_b: 1000,
            p50_a: 10.0,
            p50_b: 10.0,
            p50: change(Metric::P50, p50.0, p50.1),
            p99_a: 20.0,
            p99_b: 20.0,
            p99: change(Metric::P99, -0.1, 0.1),
            fdr_significant: false,
            summary: String::new(),
            confidence: 0.95,
        };
        AbSummary {
            name: name.into(),
            measurement: Measurement::Measured,
            ops_a: Ops::default(),
            ops_b: Ops::default(),
            scenario: scenario.into(),
            layer: None,
            strategy: None,
            cache_b: Default::default(),
            cache_b_bands: Default::default(),
            pooled: 0,
            read_backs_b: 0,
            stale_reads_b: 0,
            control,
            cold_start: false,
            measured_s: 30.0,
            a: "a".into(),
            b: "b".into(),
            status: AbStatus::Valid,
            invalid_reasons: vec![],
            warnings: vec![],
            requests: 2000,
            errors: 0,
            stale_reads: 0,
            thresholds_failed: vec![],
            rows: vec![row],
            answers: None,
            claims,
            report: None,
            result: String::new(),
        }
    }

    fn claim(improvement: f64, verdict: Verdict) -> ClaimVerdict {
        ClaimVerdict {
            name: "c".into(),
            statement: "25–35 % faster".into(),
            series: "*".into(),
            verdict,
            reason: "r".into(),
            metrics: vec![MetricVerdict {
                metric: Metric::P50,
                improvement,
                ci_low: improvement - 2.0,
                ci_high: improvement + 2.0,
                verdict,
            }],
        }
    }

    #[test]
    fn hit_words_give_the_ratio_then_each_band_by_rank() {
        let outcomes = |hit: u64, miss: u64| {
            let layer = [("hit".to_owned(), hit), ("miss".to_owned(), miss), ("off".to_owned(), 50)].into();
            [("user-models".to_owned(), layer)].into()
        };
        let mut r = run("m", "m", false, (10.0, 8.0), vec![]);
        assert_eq!(r.hit_words(), "–", "no lookups");
        r.cache_b = outcomes(87, 13);
        assert_eq!(r.hit_words(), "87 %", "no bands; switched-off outcomes are no lookups");
        r.cache_b_bands = [
            ("users-101-300".into(), outcomes(2, 1)),
            ("users-11-100".into(), outcomes(3, 1)),
            ("users-1-10".into(), outcomes(9, 1)),
        ]
        .into();
        assert_eq!(r.hit_words(), "87 % (users-1-10 90 %, users-11-100 75 %, users-101-300 67 %)");
    }

    #[test]
    fn a_control_that_calls_a_difference_takes_its_scenarios_verdicts_away() {
        let mut runs = vec![
            run("auth", "auth", false, (-0.33, -0.27), vec![claim(30.0, Verdict::Confirmed)]),
            run("mixed", "mixed", false, (-0.33, -0.27), vec![claim(30.0, Verdict::Confirmed)]),
            // auth's control called +6 % between two instances of the same arm.
            run("A/A control auth", "auth", true, (0.04, 0.08), vec![]),
            run("A/A control mixed", "mixed", true, (-0.01, 0.01), vec![]),
        ];
        hold_to_control(&mut runs);
        assert_eq!(runs[0].claims[0].verdict, Verdict::NotCalibrated, "{}", runs[0].claims[0].reason);
        assert!(runs[0].claims[0].reason.contains("A/A control of scenario auth"), "{}", runs[0].claims[0].reason);
        // mixed is held to its own control, which called nothing.
        assert_eq!(runs[1].claims[0].verdict, Verdict::Confirmed, "{}", runs[1].claims[0].reason);
    }

    #[test]
    fn repeated_controls_are_held_to_by_their_pooled_one() {
        // One of three controls called +6 % by chance; pooled, they called nothing.
        let pooled =
            AbSummary { pooled: 3, ..run("A/A control auth (pooled, 3 runs)", "auth", true, (-0.01, 0.02), vec![]) };
        let mut runs = vec![
            run("auth", "auth", false, (-0.33, -0.27), vec![claim(30.0, Verdict::Confirmed)]),
            run("A/A control auth", "auth", true, (0.04, 0.08), vec![]),
            run("A/A control auth #2", "auth", true, (-0.02, 0.01), vec![]),
            pooled,
        ];
        hold_to_control(&mut runs);
        assert_eq!(runs[0].claims[0].verdict, Verdict::Confirmed, "{}", runs[0].claims[0].reason);
        // Without the pooled one, a control that called a difference decides.
        runs.pop();
        runs[0].claims[0].verdict = Verdict::Confirmed;
        hold_to_control(&mut runs);
        assert_eq!(runs[0].claims[0].verdict, Verdict::NotCalibrated);
    }

    #[test]
    fn an_effect_within_the_own_controls_interval_is_not_called() {
        let mut runs = vec![
            run("auth", "auth", false, (-0.05, -0.03), vec![claim(4.0, Verdict::Short)]),
            run("mixed", "mixed", false, (-0.05, -0.03), vec![claim(4.0, Verdict::Short)]),
            run("A/A control auth", "auth", true, (-0.045, 0.045), vec![]),
        ];
        hold_to_control(&mut runs);
        assert_eq!(runs[0].claims[0].verdict, Verdict::Inconclusive);
        // No control of mixed: its verdict stands (and a held verdict says so).
        assert_eq!(runs[1].claims[0].verdict, Verdict::Short);
    }
}
