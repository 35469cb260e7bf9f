//! Beyond one thread: `--threads N` sends the scenario's schedule from N threads
//! and merges their records into one result (every iteration once, pairs never
//! split); the live figures are served for a Prometheus scrape and a result is
//! exported as OpenMetrics, both read by a strict parser.

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use harness::result::{AnyResult, ResultDoc};
use harness::runner::ArmSpec;

const RATE_200: &str = r#"
name = "threads"
[load]
executor = "constant-arrival-rate"
rate = 200
duration = "2s"
warmup = "0s"
[[step]]
name = "get"
request = { path = "/x" }
[[step]]
name = "again"
request = { path = "/y" }
"#;

#[test]
fn two_threads_send_the_whole_schedule_once_into_one_result() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(2)));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&server.url(), dir.path());
    opts.threads = 2;
    let out = harness::runner::run(&scenario(RATE_200), &opts).unwrap();
    let doc = out.doc();
    // 200/s for 2 s: 400 iterations of two requests, each sent once.
    assert_eq!(doc.run.started_iterations, 400);
    assert_eq!(doc.run.target_rate, Some(200.0));
    assert_eq!(doc.all().unwrap().requests, 800);
    assert_eq!(doc.metadata.load["threads"], 2);
    assert_eq!(doc.run.status, harness::result::Status::Complete, "{:?}", doc.run.invalid_reasons);
    // The seconds of both threads are one series, their histograms added.
    let seconds: u64 = doc.intervals.iter().filter(|i| i.series == "*").map(|i| i.requests).sum();
    assert_eq!(seconds, 800);
    assert!(doc.intervals.iter().all(|i| i.histogram.is_some()));
    // The file written is the merged one.
    let AnyResult::Single(written) = AnyResult::read(&out.files.json).unwrap() else { panic!("one arm") };
    assert_eq!(written.all().unwrap().requests, 800);
    assert!(std::fs::metadata(&out.files.hlog).unwrap().len() > 0);
}

#[test]
fn an_ab_on_two_threads_keeps_every_pair_whole() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&server.url(), dir.path());
    opts.threads = 2;
    opts.arms = ["a", "b"]
        .iter()
        .map(|l| ArmSpec { label: Some((*l).into()), target: server.url(), extra_headers: vec![] })
        .collect();
    let out = harness::runner::run(&scenario(RATE_200), &opts).unwrap();
    let (a, b) = (&out.arms[0].doc, &out.arms[1].doc);
    // 400 iterations in 200 pairs: each arm has exactly one of every pair.
    assert_eq!((a.all().unwrap().requests, b.all().unwrap().requests), (400, 400));
    assert_eq!(a.run.started_iterations, 400);
    // Both arms' blocks cover the same time (the joint bootstrap needs them).
    let blocks = |d: &ResultDoc| d.all().unwrap().blocks.as_ref().unwrap().counts.iter().map(|c| c[0]).max();
    assert_eq!(blocks(a), blocks(b));
}

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// `harness <command…> --shard 0/2` and `1/2` at once, of `dir/s.toml` into
/// `dir/out`: their outputs and the result files they wrote.
fn two_shards(dir: &std::path::Path, command: &[&str]) -> (Vec<std::process::Output>, Vec<std::path::PathBuf>) {
    let shards: Vec<_> = (0..2)
        .map(|i| {
            harness()
                .args(command)
                .args(["--quiet", "--threads", "1", "--shard", &format!("{i}/2")])
                .arg(dir.join("s.toml"))
                .arg("--out")
                .arg(dir.join("out"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = shards.into_iter().map(|s| s.wait_with_output().unwrap()).collect();
    let files = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    (outputs, files)
}

/// One GET of `addr`'s `/metrics`, as a scraper makes it: (status line, content type, body).
fn scrape(addr: &str) -> (String, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: ").or_else(|| l.strip_prefix("content-type: ")))
        .unwrap_or_default()
        .to_owned();
    (head.lines().next().unwrap().to_owned(), content_type, body.to_owned())
}

fn sample(samples: &[(String, std::collections::BTreeMap<String, String>, f64)], name: &str, series: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l.get("series").map(String::as_str) == Some(series))
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("no {name} for {series}"))
}

#[test]
fn live_figures_are_served_as_openmetrics_while_the_run_goes_on() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    let text = RATE_200.replace("duration = \"2s\"", "duration = \"4s\"");
    std::fs::write(dir.path().join("s.toml"), text).unwrap();
    let mut child = harness()
        .args(["run", "--quiet", "--threads", "2", "--metrics-listen", "127.0.0.1:0", "--target", &server.url()])
        .arg(dir.path().join("s.toml"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("metrics: http://").and_then(|l| l.strip_suffix("/metrics")).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("no metrics address in {line:?}")
        });
    std::thread::sleep(Duration::from_millis(2500));
    let (status, content_type, body) = scrape(addr);
    let status_of_other = {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t.lines().next().unwrap_or_default().to_owned()
    };
    assert!(child.wait().unwrap().success());
    assert!(status.contains("200"), "{status}");
    assert!(status_of_other.contains("404"), "{status_of_other}");
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let samples = parse_openmetrics(&body);
    // Both threads' figures, added: mid-run, some of the run's 1,600 requests.
    let live = sample(&samples, "harness_requests_total", "*");
    assert!(live > 200.0 && live < 1600.0, "{live}");
    let count = sample(&samples, "harness_latency_seconds_count", "*");
    let inf = samples
        .iter()
        .find(|(n, l, _)| n == "harness_latency_seconds_bucket" && l["series"] == "*" && l["le"] == "+Inf")
        .unwrap()
        .2;
    assert_eq!(count, inf);
}

#[test]
fn a_result_is_exported_as_openmetrics_with_its_counts() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    let out = harness::runner::run(&scenario(RATE_200), &options(&server.url(), dir.path())).unwrap();
    let report = dir.path().join("report");
    let status = harness()
        .args(["report", out.files.json.to_str().unwrap(), "--out", report.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(report.join("metrics.txt")).unwrap();
    let samples = parse_openmetrics(&text);
    let doc = out.doc();
    assert_eq!(sample(&samples, "harness_requests_total", "*"), doc.all().unwrap().requests as f64);
    assert_eq!(sample(&samples, "harness_requests_total", "step:get"), 400.0);
    assert_eq!(sample(&samples, "harness_latency_seconds_count", "*"), 800.0);
    // 1 ms answers: nearly all at or below 5 ms, none below 0.5 ms.
    let bucket = |le: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == "harness_latency_seconds_bucket" && l["series"] == "*" && l["le"] == le)
            .unwrap()
            .2
    };
    assert_eq!(bucket("0.0005"), 0.0);
    assert!(bucket("0.005") > 700.0, "{}", bucket("0.005"));
    let started =
        samples.iter().find(|(n, l, _)| n == "harness_iterations_total" && l["state"] == "started").unwrap().2;
    assert_eq!(started, 400.0);
}

#[test]
fn ab_shards_merge_into_one_ab_with_its_comparison() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), RATE_200).unwrap();
    let (outputs, files) = two_shards(dir.path(), &["ab", "--a", &server.url(), "--b", &server.url()]);
    for out in outputs {
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(files.len(), 2, "{files:?}");
    let merged = dir.path().join("merged.json");
    let out = harness().arg("merge").args(&files).arg("--out").arg(&merged).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
    // The comparison of the merged arms is printed, as `harness ab` prints it.
    assert!(stdout.contains("p50"), "{stdout}");
    let AnyResult::Ab(ab) = AnyResult::read(&merged).unwrap() else { panic!("an A/B result") };
    // 400 iterations in pairs over two shards: 400 requests per arm, one of each pair.
    let counts: Vec<u64> = ab.arms.iter().map(|a| a.all().unwrap().requests).collect();
    assert_eq!(counts, [400, 400]);
    assert_eq!(ab.arms[0].run.target_rate, Some(200.0));
}

/// A shard's thresholds are not the run's: `rps > 300` fails on each half of a
/// run of 400 requests/s, yet the shards exit 0 (a pod must not fail for it) and
/// the merged run, judged as one, passes; `rps > 500` fails the merged run.
#[test]
fn thresholds_are_judged_on_the_merged_run_not_on_a_shard() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    for (limit, merged_code) in [(300, 0), (500, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{RATE_200}\n[thresholds]\n\"*\" = [\"rps > {limit}\"]\n");
        std::fs::write(dir.path().join("s.toml"), text).unwrap();
        let (outputs, files) = two_shards(dir.path(), &["run", "--target", &server.url()]);
        for out in outputs {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{limit}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains("FAIL") && stdout.contains("harness merge"), "{stdout}");
        }
        let merged = dir.path().join("merged.json");
        let out = harness().arg("merge").args(&files).arg("--out").arg(&merged).output().unwrap();
        assert_eq!(out.status.code(), Some(merged_code), "{limit}: {}", String::from_utf8_lossy(&out.stdout));
        let doc = ResultDoc::read(&merged).unwrap();
        let rps = doc.thresholds.iter().find(|t| t.threshold.starts_with("rps")).unwrap();
        assert!((rps.actual - 400.0).abs() < 8.0, "two requests per iteration at 200/s: {}", rps.actual);
    }
}
