//! Whether the numbers are true: latency accuracy, coordinated omission, achieved
//! rate and validity, result-file round trip. Against real loopback servers.

mod common;

use std::time::Duration;

use common::*;
use harness::result::{ResultDoc, Status};
use harness::runner;

fn open_scenario(rate: u32, seconds: u32, max_in_flight: u32, extra: &str) -> String {
    format!(
        r#"
name = "t"
[load]
executor = "constant-arrival-rate"
rate = {rate}
duration = "{seconds}s"
max_in_flight = {max_in_flight}
{extra}
[[step]]
name = "get"
tags = ["probe"]
request = {{ path = "/x" }}
"#
    )
}

#[test]
fn a_5ms_server_reads_as_5_to_6ms() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(5)));
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(&open_scenario(100, 3, 64, "warmup = \"500ms\""));
    let out = runner::run(&sc, &options(&server.url(), dir.path())).unwrap();
    let all = &out.doc().series["*"];
    assert!(all.requests >= 290, "{}", all.requests);
    let p50 = all.corrected_ms.p50;
    assert!((5.0..=6.0).contains(&p50), "p50 {p50} ms");
    assert!((5.0..=6.0).contains(&all.raw_ms.p50), "raw p50 {} ms", all.raw_ms.p50);
    assert_eq!(out.doc().run.status, Status::Complete, "{:?}", out.doc().run.invalid_reasons);
}

/// The corrected p99 a single-connection client must report for the schedule:
/// a FIFO queue with `base` service time and the server frozen during `stalls`.
fn simulated_p99(rate: f64, seconds: f64, base: f64, stalls: &[(f64, f64)]) -> f64 {
    let n = (rate * seconds) as usize;
    let mut free_at = 0.0f64;
    let mut latencies: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let mut start = t.max(free_at);
            let mut done = start + base;
            for &(s, e) in stalls {
                if done > s && start < e {
                    start = start.max(e);
                    done = start + base;
                }
            }
            free_at = done;
            done - t
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies[(n as f64 * 0.99).ceil() as usize - 1]
}

#[test]
fn corrected_latency_shows_a_stall_that_raw_latency_hides() {
    let _x = exclusive();
    let server = spawn(Behaviour::Stall {
        base: Duration::from_millis(2),
        period: Duration::from_secs(10),
        first: Duration::from_secs(4),
        stall: Duration::from_secs(1),
    });
    let dir = tempfile::tempdir().unwrap();
    // One request in flight: like a single connection, later requests queue in the
    // client while the server stalls, and their raw latency starts only at the send.
    let sc = scenario(&open_scenario(100, 10, 1, ""));
    let out = runner::run(&sc, &options(&server.url(), dir.path())).unwrap();
    let all = &out.doc().series["*"];
    let expected = simulated_p99(100.0, 10.0, 0.002, &[(4.0, 5.0)]) * 1000.0;
    let corrected = all.corrected_ms.p99;
    let raw = all.raw_ms.p99;
    println!(
        "stall test: corrected p99 {corrected:.1} ms, raw p99 {raw:.1} ms, expected from the schedule {expected:.1} ms"
    );
    assert!(
        (corrected - expected).abs() <= expected * 0.10,
        "corrected p99 {corrected} ms vs {expected} ms from the schedule"
    );
    assert!(raw < 50.0, "raw p99 {raw} ms should not show the stall");
    assert!(out.doc().run.late_sends > 50, "queued sends are late: {}", out.doc().run.late_sends);
    let summary = harness::report::terminal::render(out.doc());
    assert!(summary.contains("raw p99"), "{summary}");
}

#[test]
fn a_2000_per_second_schedule_is_achieved() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::ZERO));
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(&open_scenario(2000, 5, 256, ""));
    let out = runner::run(&sc, &options(&server.url(), dir.path())).unwrap();
    let r = &out.doc().run;
    println!(
        "rate test: achieved {:.1}/s of {:?}, late {}, dropped {}, cpu {:.0} %",
        r.achieved_rate,
        r.target_rate,
        r.late_sends,
        r.dropped_iterations,
        r.client_cpu_share * 100.0
    );
    assert!((r.achieved_rate - 2000.0).abs() <= 40.0, "achieved {}", r.achieved_rate);
    assert_eq!(r.status, Status::Complete, "{:?}", r.invalid_reasons);
    assert_eq!(out.doc().series["*"].requests as f64, (r.achieved_rate * r.measured_s).round());
}

#[test]
fn a_server_too_slow_for_the_rate_makes_the_run_invalid() {
    let _x = exclusive();
    // 50 requests/s of capacity against 200/s asked.
    let server = spawn(Behaviour::Serial(Duration::from_millis(20)));
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(&open_scenario(200, 2, 4, "drop_after = \"100ms\""));
    let out = runner::run(&sc, &options(&server.url(), dir.path())).unwrap();
    let r = &out.doc().run;
    assert_eq!(r.status, Status::Invalid);
    assert!(r.dropped_iterations > 100, "{}", r.dropped_iterations);
    let reason = r.invalid_reasons.join(" ");
    assert!(reason.contains("below the target") && reason.contains("dropped"), "{reason}");
    let summary = harness::report::terminal::render(out.doc());
    assert!(summary.contains("INVALID"), "{summary}");
}

#[test]
fn result_file_histograms_equal_the_recorded_ones() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(&open_scenario(200, 1, 64, ""));
    let out = runner::run(&sc, &options(&server.url(), dir.path())).unwrap();
    let from_file = ResultDoc::read(&out.files.json).unwrap();
    assert_eq!(&from_file, out.doc());
    for (name, recorded) in &out.arms[0].series {
        let doc = &from_file.series[name];
        assert_eq!(&doc.corrected.decode().unwrap(), &recorded.corrected, "{name} corrected");
        assert_eq!(&doc.raw.decode().unwrap(), &recorded.raw, "{name} raw");
        for (entry, h) in &recorded.server_timing {
            assert_eq!(&doc.server_timing[entry].decode().unwrap(), h, "{name} server timing {entry}");
        }
    }
    assert!(from_file.series.contains_key("tag:probe") && from_file.series.contains_key("step:get"));
    assert_eq!(from_file.series["cache:bot=hit"].requests, from_file.series["*"].requests);
    assert!(from_file.series["*"].server_timing.contains_key("kv"));
    // The interval log is readable by the HdrHistogram log reader.
    let text = std::fs::read(&out.files.hlog).unwrap();
    let mut total = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&text) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = entry.unwrap() {
            if h.tag().is_some_and(|t| t.as_str() == "*") {
                let decoded: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut std::io::Cursor::new(
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, h.encoded_histogram())
                            .unwrap(),
                    ))
                    .unwrap();
                total += decoded.len();
            }
        }
    }
    assert_eq!(total, from_file.series["*"].requests);
}

#[test]
fn both_http_clients_measure_alike_and_classify_failures() {
    use harness::client::{ClientKind, ErrorKind};
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(5)));
    let closing = spawn(Behaviour::Close);
    let slow = spawn(Behaviour::Delay(Duration::from_millis(800)));
    for kind in [ClientKind::Hyper, ClientKind::Reqwest] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(&server.url(), dir.path());
        opts.http_client = kind;
        let out = runner::run(&scenario(&open_scenario(100, 2, 64, "")), &opts).unwrap();
        let p50 = out.doc().series["*"].corrected_ms.p50;
        assert!((5.0..=6.0).contains(&p50), "{kind:?}: p50 {p50} ms");
        assert_eq!(out.doc().metadata.load["http_client"], format!("{kind:?}").to_lowercase());

        opts.arms[0].target = closing.url();
        let out = runner::run(&scenario(&open_scenario(20, 1, 8, "")), &opts).unwrap();
        let kinds = &out.doc().series["*"].error_kinds;
        assert!(kinds.get(&ErrorKind::Reset).copied().unwrap_or(0) >= 15, "{kind:?}: {kinds:?}");
        assert_eq!(out.doc().series["*"].errors, out.doc().series["*"].requests);

        opts.arms[0].target = slow.url();
        let out = runner::run(&scenario(&open_scenario(20, 1, 64, "timeout = \"200ms\"")), &opts).unwrap();
        let kinds = &out.doc().series["*"].error_kinds;
        assert_eq!(
            kinds.get(&ErrorKind::Timeout).copied().unwrap_or(0),
            out.doc().series["*"].requests,
            "{kind:?}: {kinds:?}"
        );
    }
}
