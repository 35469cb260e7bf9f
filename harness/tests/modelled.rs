//! Modelled runs (a latency profile in effect at the target) as a user meets them:
//! labelled "modelled: <profile>" in the result file, the report and the summary;
//! never compared or merged with a measured result; the target's backend
//! operations recorded per arm; and a cold-start scenario refused where the
//! harness cannot restart the target.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use harness::result::{Measurement, ResultDoc};

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// Runs SMALL against `url` with extra `--header`s into `out`; the result file.
fn run(url: &str, headers: &[&str], out: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(out).unwrap();
    let sc = out.join("small.toml");
    std::fs::write(&sc, SMALL).unwrap();
    let mut cmd = harness();
    cmd.args(["run", sc.to_str().unwrap(), "--quiet", "--target", url, "--out"]).arg(out);
    for h in headers {
        cmd.args(["--header", h]);
    }
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a result file");
    (json, stdout)
}

#[test]
fn a_modelled_run_says_so_everywhere_and_is_never_compared_with_a_measured_one() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(std::time::Duration::from_millis(2)));
    let dir = tempfile::tempdir().unwrap();
    let (modelled, stdout) = run(&server.url(), &["x-bench-profile: edge-far-from-primary"], &dir.path().join("m"));
    let (measured, _) = run(&server.url(), &[], &dir.path().join("l"));

    let doc = ResultDoc::read(&modelled).unwrap();
    assert_eq!(doc.metadata.measurement, Measurement::Modelled("edge-far-from-primary".into()));
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&modelled).unwrap()).unwrap();
    assert_eq!(raw["metadata"]["measurement"], "modelled: edge-far-from-primary");
    assert_eq!(raw["metadata"]["anonymous_user_write"], true);
    assert!(stdout.contains("(modelled: edge-far-from-primary)"), "the summary line says it: {stdout}");
    assert_eq!(ResultDoc::read(&measured).unwrap().metadata.measurement, Measurement::Measured);

    // The target's x-ops, summed over the successful responses.
    let all = doc.all().unwrap();
    assert_eq!(all.ops.per_request("kv-read"), Some(2.0));
    assert_eq!(all.ops.responses, all.requests - all.errors);

    // The report of the modelled run: banner and every chart title.
    let report = dir.path().join("report");
    let o = harness().arg("report").arg(&modelled).arg("--out").arg(&report).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("MODELLED (modelled: edge-far-from-primary)"), "banner");
    let captions = html.matches("<figcaption").count();
    assert!(captions >= 3, "{captions} charts");
    assert_eq!(
        html.matches("(modelled: edge-far-from-primary) (").count(),
        captions,
        "every chart title says modelled"
    );

    // Compared with a measured result: refused, with both named.
    let o = harness().arg("compare").arg(&measured).arg(&modelled).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("measured") && stderr.contains("modelled: edge-far-from-primary"), "{stderr}");
    // Two results of the same profile compare, and every line says what they are.
    let (again, _) = run(&server.url(), &["x-bench-profile: edge-far-from-primary"], &dir.path().join("m2"));
    let o = harness().arg("compare").arg(&modelled).arg(&again).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.code() != Some(2), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("[modelled: edge-far-from-primary]"), "{stdout}");
}

#[test]
fn a_cold_start_scenario_is_refused_where_the_target_cannot_be_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let cold = r#"
name = "cold"
flow = "sequence"
[load]
executor = "cold-start"
starts = 5
[[step]]
name = "first"
request = { path = "/x" }
"#;
    let sc = dir.path().join("cold.toml");
    std::fs::write(&sc, cold).unwrap();
    let o =
        harness().args(["run", sc.to_str().unwrap(), "--quiet", "--target", "http://127.0.0.1:9"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("harness bench") && stderr.contains("cold-start"), "{stderr}");

    for (bad, needle) in [
        (cold.replace("flow = \"sequence\"", "flow = \"mix\""), "flow = \"sequence\""),
        (cold.replace("name = \"first\"", "name = \"first\"\nonce_per_user = true"), "once_per_user"),
        (cold.replace("starts = 5", "starts = 5\nduration = \"10s\""), "no duration"),
        (SMALL.replace("duration = \"1s\"", "duration = \"1s\"\nstarts = 3"), "cold-start"),
    ] {
        std::fs::write(&sc, &bad).unwrap();
        let o = harness().arg("validate").arg(&sc).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(needle) && stderr.contains("cold.toml:"), "{needle}: {stderr}");
    }
}
