//! Reports: the HTML's structure and numbers, self-containment, charts that are
//! real pictures, and the page in a real (headless) Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use harness::compare::{compare, CompareOptions};
use harness::runner::{self, ArmSpec};

const SCENARIO: &str = r#"
name = "report"
[load]
executor = "constant-arrival-rate"
rate = 100
duration = "3s"
[[step]]
name = "get"
tags = ["probe"]
request = { path = "/x" }
[thresholds]
"probe" = ["p(50) < 500ms", "p(99) < 1ms"]
"#;

/// An A/B run against two known servers, reported with the repository's claims
/// file and a claim on this scenario's tag.
fn ab_report(dir: &Path) -> (harness::report::ReportFiles, Vec<harness::result::ResultDoc>) {
    let (a, b) = (spawn(Behaviour::Delay(Duration::from_millis(6))), spawn(Behaviour::Delay(Duration::from_millis(3))));
    let mut opts = options(&a.url(), dir);
    opts.arms = vec![
        ArmSpec { label: Some("cache-off".into()), target: a.url(), extra_headers: vec![] },
        ArmSpec { label: Some("cache-on".into()), target: b.url(), extra_headers: vec![] },
    ];
    let out = runner::run(&scenario(SCENARIO), &opts).unwrap();
    let docs: Vec<_> = out.arms.iter().map(|a| a.doc.clone()).collect();
    let mut claims =
        harness::claims::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/claims.toml")).unwrap();
    claims.push(harness::claims::Claim {
        name: "probe".into(),
        statement: "Probe 40–60 % faster".into(),
        series: "tag:probe".into(),
        server_timing: None,
        primary: "p50".into(),
        metrics: vec![],
        faster_by: [40.0, 60.0],
        layer: None,
        overhead: false,
    });
    let c = compare(&docs[0], &docs[1], true, &claims, &CompareOptions::default()).unwrap();
    let files = harness::report::write(&docs, Some(&c), &["ab.json".into()], &dir.join("report")).unwrap();
    (files, docs)
}

/// Where the example report is kept after the test run (for people to open).
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/example-report")
}

#[test]
fn html_structure_numbers_and_self_containment() {
    let _x = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (files, docs) = ab_report(dir.path());
    let html = std::fs::read_to_string(&files.html).unwrap();
    for id in ["validity", "metadata", "claims", "comparison", "thresholds", "series", "charts"] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "section {id} missing");
    }
    // Nothing outside the file: no URL at all, no external stylesheet or script.
    assert!(!html.contains("://"), "the page names a URL");
    assert!(!html.contains("<script src") && !html.contains("<link"), "external resources");
    // The numbers are those of the result files.
    for doc in &docs {
        let all = &doc.series["*"];
        assert!(html.contains(&format!("<td>{}</td>", all.requests)), "request count {}", all.requests);
        assert!(html.contains(&format!("<td>{:.2}</td>", all.corrected_ms.p50)), "p50 {}", all.corrected_ms.p50);
    }
    // Verdicts with their reasons, threshold results, the environment statement.
    assert!(
        html.contains("did not record (not judged here): auth (tag:auth)"),
        "a claim about another scenario is named once, not judged"
    );
    assert!(html.contains("Probe 40–60 % faster"));
    assert!(html.contains("FAIL") && html.contains("pass"));
    assert!(html.contains("Absolute latencies do not transfer to production"));
    // Harness and worker versions, the worker's as its /health reported it.
    assert!(html.contains(&format!("Harness {}", env!("CARGO_PKG_VERSION"))));
    assert!(
        html.contains("cache-off: target-worker, version test-1.2.3; cache-on: target-worker, version test-1.2.3"),
        "what the targets were, and their versions"
    );
    assert!(docs.iter().all(|d| d.metadata.target_version.as_deref() == Some("test-1.2.3")));
    assert_eq!(html.matches("data:image/png;base64,").count(), files.charts.len());
    // summary.md and junit.xml: one test case per threshold (per arm) and claim.
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("| claim | verdict | reason |") && md.contains("cache-off → cache-on"));
    let junit = std::fs::read_to_string(&files.junit).unwrap();
    // Two thresholds of the scenario and the default error-rate limit, per arm.
    assert_eq!(junit.matches("<testcase classname=\"threshold\"").count(), 6);
    assert!(junit.contains("error_rate &lt; 1% (default") || junit.contains("error_rate < 1% (default"));
    assert_eq!(
        junit.matches("<testcase classname=\"claim\"").count(),
        1,
        "the probe; the claims of claims.toml are about series this run did not record"
    );
    assert!(junit.matches("<failure").count() >= 2);
    // Keep one example for people to open.
    let example = example_dir();
    let _ = std::fs::remove_dir_all(&example);
    std::fs::create_dir_all(&example).unwrap();
    for entry in std::fs::read_dir(files.html.parent().unwrap()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, example.join(p.file_name().unwrap())).unwrap();
    }
}

/// Decodes a PNG and returns its pixels' luminance variance.
fn luminance_variance(path: &Path) -> f64 {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let lum: Vec<f64> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| p.iter().take(3).map(|&c| c as f64).sum::<f64>() / 3.0)
        .collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64
}

#[test]
fn charts_are_pngs_with_content() {
    let _x = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = ab_report(dir.path());
    let names: Vec<String> =
        files.charts.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in [
        "latency-percentiles.png",
        "latency-over-time.png",
        "throughput-errors.png",
        "cache-hit-ratio.png",
        "latency-by-cache-outcome.png",
        "ab-change-by-tag.png",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    for chart in &files.charts {
        let v = luminance_variance(chart);
        assert!(v > 100.0, "{} looks blank (variance {v})", chart.display());
    }
}

fn chromium() -> PathBuf {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!("Debian's chromium is not installed: scripts/setup installs it (apt-get install chromium)");
}

#[test]
fn the_page_renders_in_headless_chromium_offline() {
    let _x = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = ab_report(dir.path());
    let shot = dir.path().join("screenshot.png");
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Networking off: every host resolves to nothing, and any proxy use fails.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", files.html.display()))
        .output()
        .expect("run chromium");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    assert!(shot.exists(), "no screenshot: {log}");
    let v = luminance_variance(&shot);
    assert!(v > 100.0, "the screenshot looks blank (variance {v})");
    let console_errors: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console_errors.is_empty(), "the page logged: {console_errors:?}");
    let failed_loads: Vec<&str> = log.lines().filter(|l| l.contains("net::ERR_")).collect();
    assert!(failed_loads.is_empty(), "the page tried to load something: {failed_loads:?}");
    let example = example_dir();
    std::fs::create_dir_all(&example).unwrap();
    std::fs::copy(&shot, example.join("screenshot.png")).unwrap();
}

/// The bench page and summary show the strategies' contracts and every price
/// with its source.
#[test]
fn reports_show_the_contracts_and_the_prices_with_their_sources() {
    let mut s = harness::findings::BenchSummary::begin("2026-11-30T00:00:00Z".into(), true, true);
    s.prices = Some(harness::findings::ranking::prices().clone());
    s.strategies = vec![harness::findings::StrategyInfo {
        name: "memory".into(),
        contract: "the isolate that took a write serves it at once".into(),
        risk: "other isolates serve the old list".into(),
    }];
    let dir = tempfile::tempdir().unwrap();
    let out = harness::report::export(
        &harness::report::Report::Bench(&s),
        harness::report::Destinations { dir: Some(dir.path()), terminal: false },
    )
    .unwrap();
    drop(out);
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("the isolate that took a write serves it at once"), "contract");
    for k in harness::findings::ranking::PRICED {
        assert!(html.contains(&format!("<td>{k}</td>")), "{k} missing from the price table");
    }
    assert!(html.contains("Cloudflare docs, D1 pricing"), "the source of a price");
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("**memory**: the isolate that took a write"), "{md}");
}
