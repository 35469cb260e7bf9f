//! `harness bench`, the main job, as a user meets it: a machine that is not set
//! up, deployed targets (real loopback servers here), and the real local stack
//! (`wrangler dev` twice) losing a server mid-run and being interrupted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use harness::bench::BenchSummary;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The one `reports/<timestamp>/` a bench wrote under `out`.
fn bench_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn summary(dir: &Path) -> BenchSummary {
    serde_json::from_slice(&std::fs::read(dir.join("bench.json")).unwrap()).unwrap()
}

#[test]
fn a_machine_without_wrangler_is_told_which_setup_command_to_run() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("wrangler.toml"), "name = \"x\"\n").unwrap();
    let out = harness()
        .args(["bench", "--quick", "--root"])
        .arg(root.path())
        .arg("--out")
        .arg(root.path().join("reports"))
        .args(std::iter::once(repo().join("scenarios/auth.toml")))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("wrangler is not installed") && stderr.contains("scripts/setup"), "{stderr}");
    assert!(stderr.contains("node_modules/.bin/wrangler"), "{stderr}");

    let half = harness().args(["bench", "--target-on", "http://127.0.0.1:9"]).output().unwrap();
    assert_eq!(half.status.code(), Some(2), "--target-on needs --target-off");
}

const NO_USERS: &str = r#"
name = "probe"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 100
duration = "30s"
warmup = "1s"
[[step]]
name = "get"
tags = ["probe"]
request = { path = "/x" }
[thresholds]
"probe" = ["error_rate < 1%"]
"#;

/// Two deployed targets on loopback, cache off 6 ms and on 3 ms, and a scenario
/// without users for them.
struct Probe {
    off: TestServer,
    on: TestServer,
    _dir: tempfile::TempDir,
    scenario: PathBuf,
    reports: PathBuf,
}

impl Probe {
    /// `harness bench --quick` against the two targets, `extra` before the scenario.
    fn bench(&self, extra: &[&str]) -> std::process::Output {
        harness()
            .args(["bench", "--quick", "--quiet", "--target-on", &self.on.url(), "--target-off", &self.off.url()])
            .args(extra)
            .arg("--out")
            .arg(&self.reports)
            .arg(&self.scenario)
            .env_remove("BENCH_SECRET")
            .output()
            .unwrap()
    }
}

fn probe() -> Probe {
    let off = spawn(Behaviour::Delay(Duration::from_millis(6)));
    let on = spawn(Behaviour::Delay(Duration::from_millis(3)));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("probe.toml");
    std::fs::write(&scenario, NO_USERS).unwrap();
    let reports = dir.path().join("reports");
    Probe { off, on, _dir: dir, scenario, reports }
}

#[test]
fn deployed_targets_get_an_interleaved_ab_and_a_report() {
    let _x = exclusive();
    let probe = probe();
    let out = probe.bench(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("expected wall time") && stdout.contains("under 10 minutes"), "{stdout}");
    let bench = bench_dir(&probe.reports);
    let s = summary(&bench);
    assert!(s.valid, "{:?}", s.invalid_reasons);
    assert_eq!(s.mode, "deployed");
    assert_eq!(s.runs.len(), 1, "no secret: no ablation");
    assert!(s.notes.iter().any(|n| n.contains("ablation") && n.contains("--bench-secret")), "{:?}", s.notes);
    let run = &s.runs[0];
    assert_eq!((run.a.as_str(), run.b.as_str()), ("cache-off", "cache-on"));
    // --quick: 5 s measured at 100 it/s, split between the arms.
    assert!((400..=600).contains(&run.requests), "{}", run.requests);
    let all = run.rows.iter().find(|r| r.series == "*").expect("all requests row");
    assert!(all.p50.change < -0.3 && all.p50.ci_high < 0.0, "3 ms vs 6 ms: {:?}", all.p50);
    assert_eq!(all.p50.direction, "faster");
    for f in ["index.html", "summary.md", "junit.xml", "p50-change.png", "probe/index.html", "results/probe.json"] {
        assert!(bench.join(f).is_file(), "{f} missing");
    }
    let html = std::fs::read_to_string(bench.join("index.html")).unwrap();
    assert!(html.contains("Verdict table") && html.contains("cache-off → cache-on"), "verdict table");
    assert!(!html.contains("http://") && !html.contains("https://"), "self-contained, no URL");
}

#[test]
fn profiles_run_every_ab_again_labelled_modelled_with_one_answer_table() {
    let _x = exclusive();
    let probe = probe();
    let bench = |extra: &[&str]| probe.bench(&[&["--no-ablation"], extra].concat());
    let reports = &probe.reports;
    let no_secret = bench(&["--profile", "kv-cold"]);
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("--bench-secret"));
    let unknown = bench(&["--bench-secret", "s", "--profile", "edge"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("edge-far-from-primary"), "the known ones are listed");

    let out = bench(&["--bench-secret", "s", "--profile", "local", "--profile", "kv-cold"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let bench_dir = bench_dir(reports);
    let s = summary(&bench_dir);
    assert!(s.valid, "{:?}", s.invalid_reasons);
    let names: Vec<&str> = s.runs.iter().map(|r| r.name.as_str()).collect();
    // Each scenario's A/A control runs under each measurement too.
    assert_eq!(
        names,
        ["probe", "A/A control probe", "probe [modelled: kv-cold]", "A/A control probe [modelled: kv-cold]"]
    );
    assert!(s.runs[1].control && s.runs[3].control);
    assert_eq!(s.runs[2].measurement.to_string(), "modelled: kv-cold");
    assert_eq!(s.runs[0].measurement.to_string(), "measured");
    assert!(s.runs[2].a.contains("modelled: kv-cold") && s.runs[2].b.contains("modelled: kv-cold"));
    assert_eq!(s.runs[2].ops_b.per_request("kv-read"), Some(2.0), "x-ops per arm");
    let answer = s.answer();
    assert_eq!(answer.columns.len(), 2);
    assert_eq!(answer.ops.len(), 2);
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(bench_dir.join("bench.json")).unwrap()).unwrap();
    assert_eq!(raw["runs"][2]["measurement"], "modelled: kv-cold");
    assert!(raw["figures"]
        .as_array()
        .is_some_and(|f| f.iter().all(|f| f["source"].as_str().is_some_and(|s| !s.is_empty()))));
    let html = std::fs::read_to_string(bench_dir.join("index.html")).unwrap();
    for needle in [
        "The answer",
        "Claims — modelled: kv-cold",
        "Verdict table — measured",
        "kv_cold_read",
        "MODELLED (modelled: kv-cold)",
    ] {
        assert!(html.contains(needle), "{needle} missing from the bench page");
    }
    let run_page = std::fs::read_to_string(bench_dir.join("probe--modelled--kv-cold-/index.html")).unwrap();
    assert!(run_page.contains("MODELLED (modelled: kv-cold)"), "the run's own report says it too");
    assert!(stdout.contains("probe [modelled: kv-cold]"), "{stdout}");
}

#[test]
fn repeated_controls_are_pooled_and_the_verdicts_held_to_the_pool() {
    let _x = exclusive();
    let probe = probe();
    let out = probe.bench(&["--no-ablation", "--bench-secret", "s", "--controls", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 runs pooled"), "the plan says so: {stdout}");
    let dir = bench_dir(&probe.reports);
    let s = summary(&dir);
    let names: Vec<&str> = s.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["probe", "A/A control probe", "A/A control probe #2", "A/A control probe (pooled, 2 runs)"]);
    let (one, two, pooled) = (&s.runs[1], &s.runs[2], &s.runs[3]);
    assert!(pooled.control && pooled.pooled == 2 && one.pooled == 0, "{pooled:?}");
    assert_eq!(pooled.requests, one.requests + two.requests, "the pool holds both runs' requests");
    // Their changes pooled by inverse variance: narrower than either run's interval.
    let half = |r: &harness::bench::AbSummary| r.all_row().map(|x| x.p50.half_width()).unwrap();
    assert!(half(pooled) < half(one).min(half(two)), "{} vs {} and {}", half(pooled), half(one), half(two));
}

/// Reads the bench's stdout on a thread; lines arrive on the channel.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, collecting what came before.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>, limit: Duration) -> String {
    let end = Instant::now() + limit;
    while let Ok(line) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        seen.push(line.clone());
        if line.contains(needle) {
            return line;
        }
    }
    panic!("no line with {needle:?} within {limit:?}; got:\n{}", seen.join("\n"));
}

/// The port of a `…: ready on http://127.0.0.1:PORT (…)` line.
fn port_of(line: &str) -> u16 {
    let rest = line.split("http://127.0.0.1:").nth(1).unwrap();
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// PIDs of processes whose command line names `--port PORT` or `entry=127.0.0.1:PORT`
/// (the wrangler node processes and workerd the bench started).
fn pids_on(port: u16) -> Vec<i32> {
    let needles = [format!("--port {port} "), format!("entry=127.0.0.1:{port} ")];
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles.iter().any(|n| cmd.contains(n.as_str())) {
            out.push(pid);
        }
    }
    out
}

/// Ends the bench on a failed assertion too, so no server outlives the test.
struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // SAFETY: SIGTERM to our own child; the bench stops its servers on it.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

/// A local bench of model-list, as far as its run's start: the bench, its output so
/// far, and the cache-on and (with `--two-servers`) cache-off ports.
struct Started {
    bench: Kill,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
    on: u16,
    off: Option<u16>,
}

fn start_local_bench(out: &Path, extra: &[&str]) -> Started {
    let mut bench = local_bench(out, extra);
    let rx = lines(&mut bench.0);
    let mut seen = Vec::new();
    let on = port_of(&wait_for(&rx, "cache-on: ready on", &mut seen, Duration::from_secs(400)));
    let off = extra
        .contains(&"--two-servers")
        .then(|| port_of(&wait_for(&rx, "cache-off: ready on", &mut seen, Duration::from_secs(60))));
    // The scenario, then its A/A control.
    wait_for(&rx, "== [1/2] model-list", &mut seen, Duration::from_secs(60));
    // Into the measured run.
    std::thread::sleep(Duration::from_secs(3));
    Started { bench, rx, seen, on, off }
}

fn local_bench(out: &Path, extra: &[&str]) -> Kill {
    let child = harness()
        .current_dir(repo())
        .args(["bench", "--quick", "--quiet", "--no-ablation", "--out"])
        .arg(out)
        .args(extra)
        .arg(repo().join("scenarios/model-list.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Kill(child)
}

#[test]
fn the_local_stack_survives_a_dying_server_and_ctrl_c_and_stops_every_server() {
    let _x = exclusive();
    let tmp = tempfile::tempdir().unwrap();

    // With two servers, one that dies mid-run: the run is invalid with the
    // reason, the partial results are kept, the other server is stopped. And
    // the port asked for is taken: the server starts on another.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let out = tmp.path().join("dies");
    let Started { mut bench, rx, mut seen, on, off } =
        start_local_bench(&out, &["--two-servers", "--port-on", &taken_port]);
    assert!(seen.iter().any(|l| l.contains(&format!("port {taken_port} is in use; using"))), "{seen:?}");
    assert_ne!(on.to_string(), taken_port);
    drop(taken);
    let off = off.expect("two servers");
    let victims = pids_on(off);
    assert!(!victims.is_empty(), "cache-off processes on port {off}");
    for pid in victims {
        // SAFETY: a process of the wrangler dev the bench under test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = bench.0.wait().unwrap();
    seen.extend(rx.try_iter());
    assert_eq!(status.code(), Some(3), "{}", seen.join("\n"));
    let dir = bench_dir(&out);
    let s = summary(&dir);
    assert!(!s.valid);
    assert!(
        s.invalid_reasons.iter().any(|r| r.contains("cache-off") && r.contains("exited")),
        "{:?}",
        s.invalid_reasons
    );
    assert!(dir.join("results/model-list.json").is_file(), "partial results kept");
    assert!(dir.join("index.html").is_file(), "the report says what happened");
    assert!(std::fs::read_to_string(dir.join("index.html")).unwrap().contains("INVALID"));
    assert!(pids_on(on).is_empty(), "the cache-on server was stopped");

    // By default one server serves both arms on one state; Ctrl-C during the
    // run: stops, writes what it has, stops the server.
    let out = tmp.path().join("ctrl-c");
    let Started { mut bench, rx, mut seen, on, off } = start_local_bench(&out, &[]);
    assert!(off.is_none() && !seen.iter().any(|l| l.contains("cache-off: starting")), "{seen:?}");
    // SAFETY: SIGINT to the bench under test, as a terminal's Ctrl-C.
    unsafe { libc::kill(bench.0.id() as i32, libc::SIGINT) };
    let status = bench.0.wait().unwrap();
    seen.extend(rx.try_iter());
    assert_eq!(status.code(), Some(3), "{}", seen.join("\n"));
    let s = summary(&bench_dir(&out));
    assert!(
        !s.valid && s.runs.first().is_some_and(|r| r.status == "interrupted"),
        "{:?}",
        s.runs.first().map(|r| &r.status)
    );
    assert!(pids_on(on).is_empty(), "the server stopped");
    let notes = s.notes.join("\n");
    assert!(notes.contains("both arms ran on one server"), "{notes}");

    // SIGKILL of the harness itself (no destructor runs): its server group
    // (wrangler's node and workerd) goes too, within seconds (issue 28, finding 8).
    let out = tmp.path().join("sigkill");
    let Started { mut bench, on, .. } = start_local_bench(&out, &[]);
    let group = pids_on(on).first().map(|&pid| process_group(pid)).expect("the server's process");
    assert!(group_members(group).len() >= 2, "wrangler and workerd in the group: {:?}", group_members(group));
    // SAFETY: SIGKILL to the bench under test.
    unsafe { libc::kill(bench.0.id() as i32, libc::SIGKILL) };
    let _ = bench.0.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !group_members(group).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = group_members(group);
    for &pid in &left {
        // SAFETY: a process of the server group the killed bench started (cleanup on failure).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(left.is_empty(), "processes of a killed bench's server outlived it: {left:?}");
}

/// The process group of `pid` (`/proc/<pid>/stat`, field 5).
fn process_group(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(2).unwrap().parse().unwrap()
}

/// The live processes of process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // A zombie is gone but for its parent's wait.
        if fields.first() != Some(&"Z") && fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn the_standard_scenarios_and_claims_validate_and_model_what_they_say() {
    let dir = repo().join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let out = harness().arg("validate").args(&files).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("claims"), "claims.toml is checked too");

    let load = |n: &str| harness::scenario::load(&dir.join(format!("{n}.toml"))).unwrap();
    let sources = |s: &harness::scenario::Scenario| -> Vec<String> {
        s.steps.iter().flat_map(|st| st.templates().map(|t| t.source())).collect()
    };
    let auth = load("auth");
    let text = sources(&auth).join("\n");
    for needle in ["session={{user.session}}", "Bearer {{user.api_key}}", "Bearer {{vars.jwt}}", "{{list.bot_ua}}"] {
        assert!(text.contains(needle), "auth.toml lacks {needle}");
    }
    assert!(auth.steps.iter().any(|s| s.request.headers.iter().all(|(k, _)| k != "cookie" && k != "authorization")));
    let bots = auth.lists.iter().find(|l| l.name == "bot_ua").unwrap();
    let browsers = auth.lists.iter().find(|l| l.name == "browser_ua").unwrap();
    assert!(browsers.per_user && browsers.values.len() >= 10 && bots.values.len() >= 10);
    assert!(matches!(auth.users.as_ref().unwrap().pick, harness::scenario::Pick::Zipf(_)));

    let settings = load("settings-change");
    let writes: Vec<String> =
        settings.steps.iter().filter(|s| s.read_back.is_some()).map(|s| s.request.path.source()).collect();
    for path in ["/user/settings", "/user/store-provider-api-key", "/user/sync-providers"] {
        assert!(writes.iter().any(|w| w == path), "{path} is written and read back: {writes:?}");
    }
    let mixed = load("mixed");
    assert!(mixed.steps.len() >= 12 && mixed.steps.iter().filter(|s| s.read_back.is_some()).count() == 3);
}

/// `--strategies` on the real local stack: each strategy's A/B of cache-off
/// against it, its staleness probes, and one ranking with the baseline. Two
/// strategies with opposite contracts: `generation` (fresh at every location on
/// one local KV) and `memory` (another isolate keeps its copy for 10 s).
#[test]
fn strategies_are_ranked_with_their_staleness_measured() {
    let _x = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("strategies");
    let mut bench = local_bench(&out, &["--strategies", "generation,memory"]);
    let status = bench.0.wait().unwrap();
    let dir = bench_dir(&out);
    let s = summary(&dir);
    assert!(s.valid, "{:?}", s.invalid_reasons);
    assert!(status.code().is_some_and(|c| c < 3), "{status:?}");
    let names: Vec<&str> = s.strategies.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["generation", "memory"]);
    assert!(s.strategies.iter().all(|x| !x.contract.is_empty() && !x.risk.is_empty()));
    let runs: Vec<(&str, Option<&str>)> = s.runs.iter().map(|r| (r.name.as_str(), r.strategy.as_deref())).collect();
    assert_eq!(
        runs,
        [
            ("model-list · generation", Some("generation")),
            ("model-list · memory", Some("memory")),
            ("A/A control model-list", None)
        ],
        "one A/B per strategy, and the scenario's A/A control"
    );
    for r in s.runs.iter().filter(|r| r.strategy.is_some()) {
        assert!(r.b == r.strategy.clone().unwrap() && r.a == "cache-off", "{} vs {}", r.a, r.b);
        // A 5-second run from an empty KV: lists hit less than half the time there.
        assert!(ranking_hits(r, Some("user-models")) > 0.1, "{}: lists were served from the cache", r.name);
        assert!(ranking_hits(r, None) > 0.5, "{}: bot verdicts were served from the cache", r.name);
        // Every strategy answers as cache-off does, pair by pair.
        let pairs = r.answers_all().expect("the pairs' answers were compared");
        assert!(pairs.compared > 100 && pairs.mismatched == 0, "{}: {pairs:?}", r.name);
    }
    let probe = |name: &str| s.staleness.iter().find(|p| p.strategy == name).unwrap_or_else(|| panic!("{name}"));
    for name in ["generation", "memory"] {
        let p = probe(name);
        assert_eq!(p.probes, 4, "{name}: {:?}", p.errors);
        assert_eq!(p.same.first_read_stale, 0, "{name}: read-your-writes at the writer's location");
        assert!(p.same.max_ms().unwrap() < 1000.0, "{name}: {:?}", p.same);
    }
    assert!(probe("generation").other.max_ms().unwrap() < 1000.0, "one local KV: fresh everywhere");
    let memory = &probe("memory").other;
    assert_eq!(memory.first_read_stale, 4, "another isolate's memory keeps the old list");
    assert!(memory.max_ms().unwrap() > 5000.0, "until its 10 s run out: {memory:?}");
    // Computed once, when the bench ended, and stored with what it found.
    let rankings = &s.rankings;
    let as_written = |r: &Vec<harness::findings::Ranking>| serde_json::to_value(r).unwrap();
    assert_eq!(as_written(rankings), as_written(&harness::findings::ranking::rankings(&s)));
    assert_eq!(rankings.len(), 1);
    let rows: Vec<&str> = rankings[0].rows.iter().map(|r| r.strategy.as_str()).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2], "cache-off (baseline)");
    assert!(rankings[0].rows.iter().all(|r| r.cost_per_million.starts_with('$')), "{:?}", rankings[0].rows);
    assert!(rankings[0].rows[..2].iter().all(|r| r.wrong_answers.starts_with("none of ")), "{:?}", rankings[0].rows);
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("Which cache strategy?") && html.contains("Cloudflare docs, Workers KV pricing"));
    assert!(std::fs::read_to_string(dir.join("summary.md")).unwrap().contains("Strategy ranking — model-list"));
    // Leaders that share the first rank are re-run head to head in one
    // interleaved run; resolved leaders are not.
    let first: Vec<&str> = rankings[0].rows.iter().filter(|r| r.rank == Some(1)).map(|r| r.strategy.as_str()).collect();
    if first.len() == 2 {
        assert_eq!(s.head_to_head.len(), 1, "{first:?} tied: one head-to-head");
        let h = &s.head_to_head[0];
        let mut ran: Vec<&str> = h.rows.iter().map(|r| r.strategy.as_str()).collect();
        ran.sort_unstable();
        assert_eq!(ran, ["generation", "memory"]);
        assert_eq!(h.pairs.len(), 1);
        assert!((h.confidence_per_pair - 0.95).abs() < 1e-9, "one pair: the bench's own confidence");
        let file = harness::result::AnyResult::read(&dir.join(&h.result)).unwrap();
        assert!(matches!(file, harness::result::AnyResult::Ab(ab) if ab.arms.len() == 2), "{}", h.result);
        assert!(html.contains("Head-to-head — model-list"), "the report shows it");
    } else {
        assert!(s.head_to_head.is_empty(), "no tie at the top ({first:?}): nothing to re-run");
    }
}

fn ranking_hits(r: &harness::bench::AbSummary, layer: Option<&str>) -> f64 {
    harness::findings::ranking::hit_ratio(&r.cache_b, layer).unwrap_or(0.0)
}
