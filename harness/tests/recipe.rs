//! `harness bench --recipe` end to end against a worker of the tests' own that
//! speaks none of this project's bench protocol (`tests/wrong-cache-worker/`,
//! under real `wrangler dev`): the recipe starts each arm, seeds its users from
//! `harness users`' template (API keys looked up by their SHA-256), resets its
//! state before every run, runs the A/A control (tied: two cache-off instances;
//! crossed: the per-request switch on both), and stops everything. The cache is wrong on purpose, so the bench must fail on
//! wrong answers; a reset that left the previous run's cache would fail the
//! second scenario's "nothing cached yet" check.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

const USERS_TEMPLATE: &str = r#"[{% for u in users %}{"key": "key:{{ u.api_key_sha256 }}", "value": "{{ u.email }}"}{% if not loop.last %},{% endif %}{% endfor %}]"#;

/// The recipe, tied (each arm its own env) or crossed (both instances in the
/// cache-on env, the cache switched per request by `x-cache-mode`).
fn recipe(wrangler: &Path, crossed: bool) -> String {
    let worker = repo().join("harness/tests/wrong-cache-worker");
    let (off_vars, switch) = if crossed {
        (
            r#"{ env_flag = "--name", env_name = "wrong-cache-worker" }
value = "off""#,
            "[switch]\nheader = \"x-cache-mode\"\n",
        )
    } else {
        (r#"{ env_flag = "--env", env_name = "nocache" }"#, "")
    };
    let on_value = if crossed { "\nvalue = \"on\"" } else { "" };
    format!(
        r#"
name = "wrong-cache worker"
describes = "the tests' wrong-on-purpose worker under local wrangler dev"
dir = "{dir}"
env = {{ WRANGLER_SEND_METRICS = "false", CI = "1" }}
start = ["{w}", "dev", "--ip", "127.0.0.1", "--port", "{{port}}", "--local", "--persist-to", "{{state}}", "--show-interactive-dev-session=false", "{{env_flag}}", "{{env_name}}"]
[ready]
path = "/status"
timeout = "120s"
[seed]
template = "users.json"
file = "{{state}}/users.json"
commands = [["{w}", "kv", "bulk", "put", "--binding", "USERS", "--local", "--persist-to", "{{state}}", "{{users}}"]]
{switch}
[arms.a]
label = "no-kv"
cache = "off"
vars = {off_vars}
[arms.b]
label = "kv"
cache = "on"
vars = {{ env_flag = "--name", env_name = "wrong-cache-worker" }}{on_value}
"#,
        dir = worker.display(),
        w = wrangler.display()
    )
}

fn scenario(name: &str) -> String {
    format!(
        r#"
name = "{name}"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 45
duration = "5s"
warmup = "0s"
max_in_flight = 32
[users]
count = 30
pick = "sequential"
seed = 1
[[step]]
name = "fresh"
once_per_user = true
request = {{ path = "/__cached?user={{{{user.id}}}}" }}
expect = {{ status = 200, body_contains = '"cached":false' }}
[[step]]
name = "me"
tags = ["auth"]
request = {{ path = "/me", headers = {{ authorization = "Bearer {{{{user.api_key}}}}" }} }}
expect = {{ status = 200, body_contains = '"email":"user' }}
[[step]]
name = "list"
weight = 2
tags = ["model-list"]
request = {{ path = "/models?user={{{{user.id}}}}" }}
expect = {{ status = 200 }}
[[step]]
name = "coding"
tags = ["model-list"]
request = {{ path = "/models/coding?user={{{{user.id}}}}" }}
expect = {{ status = 200 }}
"#
    )
}

#[test]
fn a_tied_recipe_runs_a_foreign_worker_seeded_reset_and_controlled() {
    bench_and_check(false);
}

#[test]
fn a_recipe_with_a_switch_crosses_its_instances() {
    bench_and_check(true);
}

/// Runs two scenarios and the A/A control through the recipe and checks what
/// every design must do.
fn bench_and_check(crossed: bool) {
    // One bench at a time: each starts up to three wrangler dev of the same
    // worker directory, and two at once overload a 2-core machine.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let wrangler = repo().join("node_modules/.bin/wrangler");
    assert!(wrangler.is_file(), "{} is missing: run scripts/setup first", wrangler.display());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("recipe.toml"), recipe(&wrangler, crossed)).unwrap();
    std::fs::write(dir.join("users.json"), USERS_TEMPLATE).unwrap();
    let (first, second) = (dir.join("first.toml"), dir.join("second.toml"));
    std::fs::write(&first, scenario("first")).unwrap();
    std::fs::write(&second, scenario("second")).unwrap();
    let reports = dir.join("reports");
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["bench", "--quick", "--recipe"])
        .arg(dir.join("recipe.toml"))
        .arg(&first)
        .arg(&second)
        .arg("--out")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "the bench fails on the worker's wrong answers");
    let bench_dir = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bench_dir.join("bench.json")).unwrap()).unwrap();
    assert_eq!(summary["valid"], true, "{}", summary["invalid_reasons"]);
    let design = if crossed { "crossed" } else { "tied" };
    assert!(summary["design"].as_str().unwrap().starts_with(design), "{}", summary["design"]);
    assert!(summary["mode"].as_str().unwrap().contains("wrong-cache worker"));
    let offered = |name: &str| {
        summary["capabilities"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["offered"].clone()
    };
    assert_eq!(offered("x-cache"), false);
    assert_eq!(offered("health"), false);
    let runs = summary["runs"].as_array().unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // Each scenario has its own A/A control: its verdicts are held to it.
    assert_eq!(names, ["first", "second", "A/A control first", "A/A control second"]);
    assert_eq!((runs[2]["control"].clone(), runs[3]["control"].clone()), (true.into(), true.into()));
    assert_eq!((runs[2]["scenario"].as_str(), runs[3]["scenario"].as_str()), (Some("first"), Some("second")));
    // Wrong answers need a user's filtered list cached before the plain one on the
    // same instance: a few per run (2 of 75 pairs in one CI run, 0 in its other),
    // so they are counted over both scenario runs.
    let wrong: u64 = runs[..2].iter().map(|r| r["answers"]["series"]["*"]["mismatched"].as_u64().unwrap()).sum();
    assert!(wrong > 0, "the wrong cache is seen");
    assert_eq!(runs[2]["answers"]["series"]["*"]["mismatched"], 0, "cache off on two instances agrees");
    let instances =
        summary["notes"].as_array().unwrap().iter().filter(|n| n.as_str().unwrap().starts_with("instance ")).count();
    assert_eq!(instances, if crossed { 2 } else { 3 }, "a tied design adds a second cache-off instance");
    for name in ["first", "second", "A-A-control-first", "A-A-control-second"] {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bench_dir.join(format!("results/{name}.json"))).unwrap()).unwrap();
        for arm in doc["arms"].as_array().unwrap() {
            let all = &arm["series"]["*"];
            assert!(all["requests"].as_u64().unwrap() > 20, "{name}: {all}");
            // Seeded users authenticate; a fresh instance has nothing cached.
            assert_eq!(all["check_failures"], 0, "{name} ({}): {}", arm["metadata"]["variant"], all);
        }
    }
    for url in [&summary["target_on"], &summary["target_off"]] {
        let addr = url.as_str().unwrap().trim_start_matches("http://");
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} is still served after the bench");
    }
}
