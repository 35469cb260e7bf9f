//! What `deploy/` and `.github/` give a team, checked offline: the Kubernetes
//! manifests against the Kubernetes schemas (kubernetes-validate), the workflow
//! against GitHub's schema (check-jsonschema), the image's build file; and the
//! Indexed Job run for real as local processes given what the Job gives its pods
//! (JOB_COMPLETION_INDEX, the container's args and env, the mounts as
//! directories), then its merge step as the merge Job runs it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use harness::result::{AnyResult, ResultDoc};
use serde_json::Value;

/// A YAML manifest as JSON (PyYAML reads it).
fn manifest(name: &str) -> Value {
    let path = repo_root().join("deploy/k8s").join(name);
    let out = Command::new(pytool("python"))
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_manifests_are_valid_kubernetes() {
    let files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    // The oldest Kubernetes still commonly run with Indexed Jobs GA, and the newest known.
    for version in ["1.27.0", "1.33.0"] {
        let out = Command::new(pytool("kubernetes-validate"))
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let job = manifest("shards-job.yaml");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let n = job["spec"]["completions"].as_u64().unwrap();
    let args: Vec<&str> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let shard = args[args.iter().position(|a| *a == "--shard").unwrap() + 1];
    assert_eq!(shard, format!("$(JOB_COMPLETION_INDEX)/{n}"), "the shard count must be the Job's completions");
}

/// `$(NAME)` in a container's args, replaced as Kubernetes does from the container's env.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// A mount path in a container's args, as the local directory standing for it.
fn mounted(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = text.to_owned();
    for (at, dir) in mounts {
        out = out.replace(at.as_str(), dir.to_str().unwrap());
    }
    out
}

/// The container's plain env values (`valueFrom` ones are the test's to give).
fn env_of(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        .collect()
}

fn mounts_of(container: &Value, dirs: &BTreeMap<&str, PathBuf>) -> Vec<(String, PathBuf)> {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap().to_owned(), dirs[m["name"].as_str().unwrap()].clone()))
        .collect()
}

fn harness_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_harness"))
}

fn results_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.to_string_lossy().contains("-shard"))
        .collect();
    files.sort();
    files
}

fn merge(files: &[PathBuf], extra: &[&str], out: &Path) -> std::process::Output {
    Command::new(harness_bin()).arg("merge").args(files).arg("--out").arg(out).args(extra).output().unwrap()
}

#[test]
fn the_indexed_job_runs_as_local_processes_and_its_merge_gives_the_whole_run() {
    let _x = exclusive();
    let server = spawn(Behaviour::Delay(Duration::from_millis(1)));
    let tmp = tempfile::tempdir().unwrap();
    let dirs: BTreeMap<&str, PathBuf> =
        [("scenarios", tmp.path().join("scenarios")), ("results", tmp.path().join("results"))].into_iter().collect();
    for d in dirs.values() {
        std::fs::create_dir_all(d).unwrap();
    }
    // What the ConfigMap holds: the scenario the Job names, here a loopback one.
    let scenario =
        "name = \"model-list\"\n[load]\nexecutor = \"constant-arrival-rate\"\nrate = 100\nduration = \"2s\"\n\
                    warmup = \"0s\"\n[[step]]\nname = \"list\"\nrequest = { path = \"/models\" }\n";
    std::fs::write(dirs["scenarios"].join("model-list.toml"), scenario).unwrap();

    let job = manifest("shards-job.yaml");
    let n = job["spec"]["completions"].as_u64().unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let mounts = mounts_of(container, &dirs);
    let mut env = env_of(container);
    env.insert("HARNESS_TARGET".into(), server.url());
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut pod_env = env.clone();
            pod_env.insert("JOB_COMPLETION_INDEX".into(), i.to_string());
            let mut args: Vec<String> = container["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| mounted(&expand(a.as_str().unwrap(), &pod_env), &mounts))
                .collect();
            // The pods' common start, on a shorter period for the test.
            let align = args.iter().position(|a| a == "--align-start").expect("the Job aligns its pods' starts");
            args[align + 1] = "1s".into();
            // Two cores here: one sending thread per pod. All pods at once, as the Job starts them.
            Command::new(harness_bin())
                .args(&args)
                .envs(&pod_env)
                .env("HARNESS_THREADS", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect::<Vec<_>>();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a pod failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let run_dir = dirs["results"].join(&env["RUN_ID"]);
    let shards = results_in(&run_dir);
    assert_eq!(shards.len() as u64, n, "{shards:?}");

    // The merge Job's command, with the volume as a directory and harness on PATH.
    let merge_job = manifest("merge-job.yaml");
    let merge_container = &merge_job["spec"]["template"]["spec"]["containers"][0];
    let script = mounted(merge_container["args"][0].as_str().unwrap(), &mounts_of(merge_container, &dirs));
    let shell = merge_container["command"].as_array().unwrap();
    let path = format!("{}:{}", harness_bin().parent().unwrap().display(), std::env::var("PATH").unwrap());
    let out = Command::new(shell[0].as_str().unwrap())
        .arg(shell[1].as_str().unwrap())
        .arg(&script)
        .envs(env_of(merge_container))
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let merged = ResultDoc::read(&run_dir.join("merged.json")).unwrap();
    // 100/s for 2 s, sent by ten pods: every iteration of the schedule exactly once.
    assert_eq!(merged.all().unwrap().requests, 200);
    assert_eq!(merged.run.started_iterations, 200);
    assert_eq!(merged.run.target_rate, Some(100.0));
    assert_eq!(merged.metadata.merged.as_ref().unwrap().shards.len() as u64, n);
    assert!(merged.metadata.shard.is_none());
    assert!(run_dir.join("report/index.html").exists() && run_dir.join("report/metrics.txt").exists());
    let seconds: u64 = merged.intervals.iter().filter(|i| i.series == "*").map(|i| i.requests).sum();
    assert_eq!(seconds, 200, "every shard's seconds, aligned on the wall clock");

    // What merge refuses: a missing shard, a shard twice, another scenario's shard.
    let out_file = tmp.path().join("m.json");
    let refused = merge(&shards[1..], &[], &out_file);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("shard 0/10") && stderr.contains("missing") && stderr.contains("--allow-missing"),
        "{stderr}"
    );
    let partial = merge(&shards[1..], &["--allow-missing"], &out_file);
    assert!(partial.status.code().is_some_and(|c| c != 2), "{}", String::from_utf8_lossy(&partial.stderr));
    let partial = ResultDoc::read(&out_file).unwrap();
    assert_eq!(partial.metadata.merged.as_ref().unwrap().missing, [0]);
    assert!(partial.run.warnings.iter().any(|w| w.contains("without shard(s) 0/10")), "{:?}", partial.run.warnings);
    assert_eq!(partial.all().unwrap().requests, 180);
    let twice = merge(&[shards.clone(), vec![shards[3].clone()]].concat(), &[], &out_file);
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert_eq!(twice.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("given twice"), "{stderr}");

    let other = tmp.path().join("other.toml");
    std::fs::write(&other, scenario.replace("/models", "/other")).unwrap();
    let other_out = tmp.path().join("other");
    let ran = Command::new(harness_bin())
        .args(["run", "--quiet", "--threads", "1", "--shard", "0/10", "--target", &server.url()])
        .arg(&other)
        .arg("--out")
        .arg(&other_out)
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let foreign = [results_in(&other_out), shards[1..].to_vec()].concat();
    let mixed = merge(&foreign, &[], &out_file);
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert_eq!(mixed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("different scenario"), "{stderr}");

    // The merged result is a result: compare and report take it.
    let AnyResult::Single(_) = AnyResult::read(&run_dir.join("merged.json")).unwrap() else { panic!("one arm") };
    let compared = Command::new(harness_bin())
        .arg("compare")
        .arg(run_dir.join("merged.json"))
        .arg(run_dir.join("merged.json"))
        .output()
        .unwrap();
    assert!(compared.status.success(), "{}", String::from_utf8_lossy(&compared.stderr));
}

#[test]
fn the_workflow_is_valid_and_runs_what_the_readme_says() {
    let workflow = repo_root().join(".github/workflows/bench.yml");
    let out = Command::new(pytool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&workflow)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    // The README's test command, run as its steps.
    assert!(readme.contains("scripts/setup && scripts/test"));
    let out = Command::new(pytool("python"))
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&workflow)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let flow: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every run step in bash with pipefail: a status piped into tee must get through.
    assert_eq!(flow["defaults"]["run"]["shell"], "bash", "run steps in bash (pipefail)");
    let runs = |job: &str| -> Vec<String> {
        flow["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"].as_str().map(str::to_owned))
            .collect()
    };
    let bench = runs("bench");
    for step in ["scripts/setup", "scripts/test"] {
        assert!(bench.iter().any(|r| r == step), "the bench job runs {step}: {bench:?}");
    }
    assert!(bench.iter().any(|r| r.contains("scripts/bench --quick") && r.contains("exit \"$code\"")));
    // The gate: pull requests, the base's history fetched, the step whose
    // behaviour tests/gate.rs checks, its summary on the run's page.
    let gate = &flow["jobs"]["gate"];
    assert!(gate["if"].as_str().unwrap().contains("pull_request"));
    let steps = gate["steps"].as_array().unwrap();
    assert!(steps.iter().any(
        |s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/checkout")) && s["with"]["fetch-depth"] == 0
    ));
    let step = steps.iter().find(|s| s["run"] == "scripts/ci-gate").expect("a step runs scripts/ci-gate");
    assert!(step["env"]["GATE_BASE"].as_str().unwrap().contains("github.base_ref"), "{step}");
    let script = std::fs::read_to_string(repo_root().join("scripts/ci-gate")).unwrap();
    assert!(script.contains("--summary \"$GITHUB_STEP_SUMMARY\""), "the gate's table goes to the run's page");
    // No gate against a bench stored by another runner at another time.
    let text = std::fs::read_to_string(&workflow).unwrap();
    assert!(!text.contains("--max-regression") && !text.contains("bench-baseline"), "no stored-baseline gate");
}

#[test]
fn the_image_builds_the_harness_and_runs_it() {
    const SCRIPT: &str = r#"
import json, sys
from dockerfile_parse import DockerfileParser
p = DockerfileParser(path=sys.argv[1])
print(json.dumps({"stages": [i["value"] for i in p.structure if i["instruction"] == "FROM"],
                  "runs": [i["value"] for i in p.structure if i["instruction"] == "RUN"],
                  "entrypoint": [i["value"] for i in p.structure if i["instruction"] == "ENTRYPOINT"]}))
"#;
    let file = repo_root().join("deploy/harness.Dockerfile");
    let out = Command::new(pytool("python")).args(["-c", SCRIPT]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["stages"].as_array().unwrap().len(), 2, "a build stage and a slim one");
    assert!(parsed["runs"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().contains("-p harness")));
    assert_eq!(parsed["entrypoint"][0], "[\"harness\"]");
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "the build context must not carry target/");
    // The image the Jobs run is the one this file builds.
    let job = std::fs::read_to_string(repo_root().join("deploy/k8s/shards-job.yaml")).unwrap();
    let tag = std::fs::read_to_string(&file).unwrap();
    assert!(job.contains("image: cache-bench-harness:latest") && tag.contains("-t cache-bench-harness:latest"));
}
