//! A/B comparison against loopback servers with known effects: the verdicts on a
//! claim, and why the arms must be interleaved.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use harness::claims::{Claim, Verdict};
use harness::compare::{compare, CompareOptions, Comparison, Direction, Resampling};
use harness::runner::{self, ArmSpec};
use harness::stats::Metric;

fn claim() -> Claim {
    Claim {
        name: "t".into(),
        statement: "25–35 % faster".into(),
        series: "tag:probe".into(),
        server_timing: None,
        primary: "p50".into(),
        metrics: vec!["mean".into()],
        faster_by: [25.0, 35.0],
        layer: None,
        overhead: false,
    }
}

fn scenario_text(rate: u32, seconds: u32) -> String {
    format!(
        "name = \"ab\"\n[load]\nexecutor = \"constant-arrival-rate\"\nrate = {rate}\nduration = \"{seconds}s\"\nwarmup = \"500ms\"\nmax_in_flight = 256\n[[step]]\nname = \"get\"\ntags = [\"probe\"]\nrequest = {{ path = \"/x\" }}\n"
    )
}

fn interleaved(a: &str, b: &str, rate: u32, seconds: u32, dir: &Path) -> Comparison {
    let mut opts = options(a, dir);
    opts.arms = vec![
        ArmSpec { label: Some("a".into()), target: a.to_owned(), extra_headers: vec![] },
        ArmSpec { label: Some("b".into()), target: b.to_owned(), extra_headers: vec![] },
    ];
    let out = runner::run(&scenario(&scenario_text(rate, seconds)), &opts).unwrap();
    assert_eq!(out.arms.len(), 2);
    let (na, nb) = (out.arms[0].doc.series["*"].requests, out.arms[1].doc.series["*"].requests);
    assert!(na.abs_diff(nb) <= 1, "pairs split the iterations evenly: {na} vs {nb}");
    // The A/B file holds both arms.
    match harness::result::AnyResult::read(&out.files.json).unwrap() {
        harness::result::AnyResult::Ab(ab) => assert_eq!(ab.arms.len(), 2),
        _ => panic!("an A/B run writes an A/B result"),
    }
    compare(&out.arms[0].doc, &out.arms[1].doc, true, &[claim()], &CompareOptions::default()).unwrap()
}

fn probe(c: &Comparison) -> &harness::compare::SeriesComparison {
    c.series.iter().find(|s| s.series == "tag:probe").unwrap()
}

/// A server with a `median_ms` median; `tail` is the share of 6× slow requests.
fn shaped(median_ms: f64, tail: f64) -> TestServer {
    spawn(Behaviour::Shaped {
        median: Duration::from_secs_f64(median_ms / 1000.0),
        tail_every: if tail > 0.0 { (1.0 / tail).round() as u64 } else { 0 },
        drift: Duration::ZERO,
        served: Default::default(),
    })
}

#[test]
fn thirty_percent_faster_confirms_a_25_to_35_claim() {
    let _x = exclusive();
    // The middle of the range as measured: the client adds its own constant
    // (0.2–0.6 ms here), which shrinks the measured change. At 14 ms one run
    // measured 26.8 % (CI against the 25 % edge), at 13.5 ms one 33.4 % [31.9,
    // 35.2] (against the 35 % edge); 13.75 ms is 31.3 % nominal, about 30.5 %
    // as measured, at least 4 points from either edge for a CI of ±1.5.
    let (a, b) = (shaped(20.0, 0.0), shaped(13.75, 0.0));
    let dir = tempfile::tempdir().unwrap();
    let c = interleaved(&a.url(), &b.url(), 200, 6, dir.path());
    let p = probe(&c);
    println!("{}", harness::report::terminal::render_comparison(&c));
    assert_eq!(c.claims[0].verdict, Verdict::Confirmed, "{}", c.claims[0].reason);
    assert!(p.summary.contains("faster at p50"), "{}", p.summary);
    assert!(p.mann_whitney.p_value < 0.001);
}

/// That a 95 % CI holds 0 in about 95 % of A/A runs is a rate, checked over many
/// runs by `bench/calibrate`; one run can only show what must hold every time.
#[test]
fn identical_arms_refute_the_claim_with_time_block_cis() {
    let _x = exclusive();
    let server = shaped(10.0, 0.0);
    let dir = tempfile::tempdir().unwrap();
    let c = interleaved(&server.url(), &server.url(), 200, 4, dir.path());
    println!("{}", harness::report::terminal::render_comparison(&c));
    assert_eq!(c.claims[0].verdict, Verdict::Refuted, "{:?}", c.claims[0]);
    let p = probe(&c);
    assert!(matches!(p.resampling, Resampling::Blocks { joint: true, .. }), "{:?}", p.resampling);
    for m in [Metric::P50, Metric::Mean] {
        let ch = p.metric(m).unwrap();
        assert!(ch.change.abs() < 0.1 && ch.ci_low < ch.change && ch.change < ch.ci_high, "{m:?}: {ch:?}");
    }
    // 400 requests per arm: too few to call anything at p99.
    assert_eq!(p.metric(Metric::P99).unwrap().direction, Direction::Undetermined);
    assert!(!p.metric(Metric::P99).unwrap().enough_samples);
}

#[test]
fn ten_percent_faster_with_a_heavy_tail_is_short() {
    let _x = exclusive();
    let (a, b) = (shaped(20.0, 0.05), shaped(18.0, 0.05));
    let dir = tempfile::tempdir().unwrap();
    let c = interleaved(&a.url(), &b.url(), 200, 6, dir.path());
    println!("{}", harness::report::terminal::render_comparison(&c));
    assert_eq!(c.claims[0].verdict, Verdict::Short, "{}", c.claims[0].reason);
}

#[test]
fn interleaving_cancels_drift_that_back_to_back_runs_report() {
    let _x = exclusive();
    // Everyone gets slower by 3 ms every second.
    let server = spawn(Behaviour::Shaped {
        median: Duration::from_millis(5),
        tail_every: 0,
        drift: Duration::from_millis(3),
        served: Default::default(),
    });
    let dir = tempfile::tempdir().unwrap();
    let c = interleaved(&server.url(), &server.url(), 200, 4, dir.path());
    let p50 = probe(&c).metric(Metric::P50).unwrap().clone();
    // Latencies run from 5 to 17 ms over the run; interleaved, the arms stay close.
    assert!(p50.change.abs() < 0.05, "interleaved identical arms: {p50:?}");

    // The same arms one after the other: the drift reads as a slowdown.
    let text = scenario_text(100, 3);
    let first = runner::run(&scenario(&text), &options(&server.url(), dir.path())).unwrap();
    let second = runner::run(&scenario(&text), &options(&server.url(), dir.path())).unwrap();
    let c = compare(first.doc(), second.doc(), false, &[], &CompareOptions::default()).unwrap();
    let p50 = probe(&c).metric(Metric::P50).unwrap();
    println!("back to back: {}", probe(&c).summary);
    assert_eq!(p50.direction, "slower", "{p50:?}");
    assert!(p50.change > 0.2, "{p50:?}");
    assert!(c.notes.iter().any(|n| n.contains("interleaves")));
}

#[test]
fn the_cli_gates_claims_and_regressions() {
    let _x = exclusive();
    let (a, b) = (shaped(10.0, 0.0), shaped(8.0, 0.0));
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("s.toml");
    std::fs::write(&sc, scenario_text(100, 3)).unwrap();
    let claims = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/claims.toml");
    let json = dir.path().join("cmp.json");
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_harness"));
        cmd.args(["ab", sc.to_str().unwrap(), "--quiet", "--a", &a.url(), "--b", &b.url(), "--out"])
            .arg(dir.path())
            .args(extra);
        cmd.output().unwrap()
    };
    // The real claims file names series this scenario lacks: they are named once,
    // not judged, so --require-claims fails (nothing was judged); without it the
    // run passes.
    let out = run(&["--claims", claims.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("NOT MEASURED"), "{stdout}");
    assert!(
        stdout.contains("claims about series this run did not record (not judged here): auth (tag:auth)"),
        "{stdout}"
    );
    let saved: Comparison = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((saved.claims.len(), saved.claims_elsewhere.len()), (0, 4));
    let out = run(&["--claims", claims.to_str().unwrap(), "--require-claims"]);
    assert_eq!(out.status.code(), Some(1));

    // compare on the A/B file: B is 20 % faster, so B→A is a 25 % regression: a 10 %
    // limit fails it, 40 % passes it, and an improvement never fails.
    let ab_file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("-ab-") && p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let compare = |limit: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["compare", ab_file.to_str().unwrap(), "--max-regression", limit])
            .output()
            .unwrap()
    };
    let out = compare("10%");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let doc = harness::result::AnyResult::read(&ab_file).unwrap();
    let harness::result::AnyResult::Ab(ab) = doc else { panic!() };
    let a_file = dir.path().join("a.json");
    let b_file = dir.path().join("b.json");
    ab.arms[0].write(&a_file).unwrap();
    ab.arms[1].write(&b_file).unwrap();
    let reverse = |limit: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["compare", b_file.to_str().unwrap(), a_file.to_str().unwrap(), "--max-regression", limit])
            .output()
            .unwrap()
    };
    let failed = reverse("10%");
    assert_eq!(failed.status.code(), Some(1), "{}", String::from_utf8_lossy(&failed.stdout));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("baseline gate FAILED"));
    assert_eq!(reverse("40%").status.code(), Some(0));
    let out = compare("2%");
    assert_eq!(out.status.code(), Some(0), "an improvement never fails the gate");
}

/// `--until-decided`: a decided comparison stops after its first look; one that
/// cannot be decided (a claim of "within ±1 %" on identical arms, whose CI is
/// wider than that range) spends every look, and the merged result holds them all.
#[test]
fn until_decided_stops_when_decided_and_spends_the_budget_when_not() {
    let _x = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("s.toml");
    std::fs::write(&sc, scenario_text(100, 1)).unwrap();
    let run = |a: &str, b: &str, range: &str, name: &str| {
        let claims = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &claims,
            format!("[[claim]]\nname = \"c\"\nstatement = \"s\"\nseries = \"tag:probe\"\nfaster_by = {range}\n"),
        )
        .unwrap();
        let json = dir.path().join(format!("{name}.json"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["ab", sc.to_str().unwrap(), "--quiet", "--a", a, "--b", b, "--until-decided", "3s", "--claims"])
            .arg(&claims)
            .arg("--json")
            .arg(&json)
            .arg("--out")
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
        let c: Comparison = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (c, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // 13.5 ms, not 14: the client adds its own constant (about 0.6 ms here), which
    // shrinks the measured change; at 14 ms that put 26.8 % against the 25 % edge.
    let (a, b) = (shaped(20.0, 0.0), shaped(13.5, 0.0));
    let (c, _) = run(&a.url(), &b.url(), "[15, 45]", "decided");
    assert_eq!(c.claims[0].verdict, Verdict::Confirmed, "{}", c.claims[0].reason);
    assert!(c.notes.iter().any(|n| n.contains("decided after 1 of at most 3 looks")), "{:?}", c.notes);
    // Every look's CI spends a third of α: 98.33 %.
    assert!((probe(&c).confidence - (1.0 - 0.05 / 3.0)).abs() < 1e-9);
    assert!(c.claims[0].reason.contains("98.3 % CI"), "{}", c.claims[0].reason);

    let same = shaped(10.0, 0.0);
    let (c, stdout) = run(&same.url(), &same.url(), "[-1, 1]", "undecided");
    assert_eq!(c.claims[0].verdict, Verdict::Inconclusive, "{}", c.claims[0].reason);
    assert!(c.notes.iter().any(|n| n.contains("still undecided") && n.contains("3 of at most 3")), "{:?}", c.notes);
    // Three looks of 1 s at 100 iterations/s, split between the arms.
    assert!((130..=170).contains(&probe(&c).count_a), "{}", probe(&c).count_a);
    let merged = stdout.lines().find_map(|l| l.strip_prefix("result: ")).unwrap().split(' ').next().unwrap();
    assert!(merged.ends_with("-merged.json"), "{merged}");
    let harness::result::AnyResult::Ab(ab) = harness::result::AnyResult::read(Path::new(merged)).unwrap() else {
        panic!("an A/B result")
    };
    assert!((ab.arms[0].run.measured_s - 3.0).abs() < 0.3, "{}", ab.arms[0].run.measured_s);
}

/// One run of the probe scenario with an arm per labelled server.
fn run_arms(servers: &[(&str, &TestServer)], rate: u32, seconds: u32, dir: &Path) -> runner::RunOutcome {
    let mut opts = options(&servers[0].1.url(), dir);
    opts.arms = servers
        .iter()
        .map(|(l, s)| ArmSpec { label: Some((*l).into()), target: s.url(), extra_headers: vec![] })
        .collect();
    runner::run(&scenario(&scenario_text(rate, seconds)), &opts).unwrap()
}

/// Three arms of one run: iterations in sets of one per arm (each arm a third,
/// within one), one result file with every arm, and each pair comparable as an
/// interleaved A/B — what a head-to-head of strategies reads.
#[test]
fn three_arms_interleave_in_sets_and_rank_from_their_pairs() {
    let _x = exclusive();
    let (a, b, c) = (shaped(10.0, 0.0), shaped(10.0, 0.0), shaped(7.0, 0.0));
    let tmp = tempfile::tempdir().unwrap();
    let out = run_arms(&[("a", &a), ("b", &b), ("c", &c)], 150, 5, tmp.path());
    let n: Vec<u64> = out.arms.iter().map(|x| x.doc.series["*"].requests).collect();
    assert!(n.iter().max().unwrap() - n.iter().min().unwrap() <= 1, "sets split the iterations evenly: {n:?}");
    match harness::result::AnyResult::read(&out.files.json).unwrap() {
        harness::result::AnyResult::Ab(ab) => assert_eq!(ab.arms.len(), 3),
        _ => panic!("a run of three arms writes every arm"),
    }
    let docs: Vec<&harness::result::ResultDoc> = out.arms.iter().map(|x| &x.doc).collect();
    let per_pair = CompareOptions { alpha: 0.05 / 3.0, ..CompareOptions::default() };
    let p50 = |i: usize, j: usize| {
        let cmp = harness::compare::compare_arms(docs[i], docs[j], true, &per_pair).unwrap();
        cmp.series.iter().find(|s| s.series.is_all()).unwrap().metric(Metric::P50).cloned()
    };
    for from in [0, 1] {
        let m = p50(from, 2).unwrap();
        // 30 % nominal; the servers' 1 ms timer steps move it by a few points.
        assert!(
            m.ci_high < -0.1 && m.change > -0.45 && m.change < -0.15,
            "c is about 30 % faster than arm {from}: {m:?}"
        );
    }
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let ms: Vec<f64> =
        docs.iter().map(|d| Metric::P50.of(&d.series["*"].blocks.as_ref().unwrap().to_blocks().dist())).collect();
    let (rows, pairs) = harness::findings::head_to_head::rank(&names, &ms, p50);
    assert_eq!((rows[0].strategy.as_str(), rows[0].rank_words.as_str()), ("c", "1"), "{rows:?}");
    assert!(rows[1..].iter().all(|r| r.rank >= 2), "{rows:?}");
    assert_eq!(pairs.len(), 3);
    // `harness compare` reads two arms of the file, or says how to pick them.
    let harness =
        |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_harness")).args(args).output().unwrap();
    let file = out.files.json.to_str().unwrap();
    let picked = harness(&["compare", file, "--arms", "a,c"]);
    let text = String::from_utf8_lossy(&picked.stdout);
    let why = String::from_utf8_lossy(&picked.stderr);
    assert!(picked.status.code().is_some_and(|c| c < 2) && text.contains("faster"), "{text}{why}");
    let unpicked = harness(&["compare", file]);
    let err = String::from_utf8_lossy(&unpicked.stderr);
    assert_eq!(unpicked.status.code(), Some(2), "{err}");
    assert!(err.contains("a run of 3 arms (a, b, c); pick two with --arms BASE,CAND"), "{err}");
}

/// An overhead measured by three arms: the work costs 30 ms uncached (90 ms
/// against 60 without it) and 15 ms cached (75 ms): 50 % lower, which the
/// two-arm change of whole requests (about 17 % faster) could only bound. Tens
/// of milliseconds, so the servers' 1 ms timer steps move the truth by a few
/// points only (at 6/9/7.5 ms one run measured 57.8 % [50.8, 63.3]: the truth
/// itself had moved). The interval is not asked to hold 50 %: that is a rate,
/// held by the Monte-Carlo suite, not something one run can show.
#[test]
fn an_overhead_is_judged_on_its_own_fall_with_an_arm_without_the_work() {
    let _x = exclusive();
    let (none, uncached, cached) = (shaped(60.0, 0.0), shaped(90.0, 0.0), shaped(75.0, 0.0));
    let tmp = tempfile::tempdir().unwrap();
    let out = run_arms(&[("uncached", &uncached), ("cached", &cached), ("none", &none)], 200, 6, tmp.path());
    let claim = Claim { overhead: true, faster_by: [30.0, 70.0], ..claim() };
    let compare_opts = CompareOptions::default();
    let two = compare(&out.arms[0].doc, &out.arms[1].doc, true, std::slice::from_ref(&claim), &compare_opts).unwrap();
    let bounded = &two.claims[0];
    assert_eq!(bounded.verdict, Verdict::Inconclusive, "whole requests bound it only: {}", bounded.reason);
    let arms = harness::overhead::OverheadArms {
        without: &out.arms[2].doc,
        uncached: &out.arms[0].doc,
        cached: &out.arms[1].doc,
    };
    let judged = harness::overhead::judge(&claim, &arms, bounded, &compare_opts);
    println!("{}", judged.reason);
    assert_eq!(judged.verdict, Verdict::Confirmed, "{}", judged.reason);
    let p50 = &judged.metrics[0];
    assert!((p50.improvement - 50.0).abs() < 10.0, "{p50:?}");
    assert!(judged.reason.contains("the overhead measured directly"), "{}", judged.reason);
    // Outside the range, the same fall is not confirmed.
    let high = Claim { faster_by: [75.0, 95.0], ..claim.clone() };
    assert_ne!(harness::overhead::judge(&high, &arms, bounded, &compare_opts).verdict, Verdict::Confirmed);
}
