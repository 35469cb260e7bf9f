//! Read-your-writes checks and `[lists]`, against a real loopback key-value server
//! that can be made to serve stale values.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::*;
use harness::runner;

const SCENARIO: &str = r#"
name = "ryw"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 100
duration = "2s"
[users]
count = 6
pick = "uniform"
[lists.ua]
per = "user"
values = ["ua-a", "ua-b", "ua-c", "ua-d"]
[lists.color]
values = ["red", "green", "blue", "cyan"]
[[step]]
name = "write"
tags = ["settings-write"]
request = { method = "PUT", path = "/kv/{{user.index}}", body = "{{list.color}}-{{iteration}}", headers = { user-agent = "{{list.ua}}" } }
expect = { status = 200 }
[step.read_back]
request = { path = "/kv/{{user.index}}", headers = { user-agent = "{{list.ua}}" } }
expect = { status = 200, body_contains = "{{list.color}}-{{iteration}}" }
"#;

fn store(stale: bool) -> (TestServer, RequestLog) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = spawn(Behaviour::Store { stale, log: Arc::clone(&log), values: Arc::default() });
    (server, log)
}

#[test]
fn fresh_reads_pass_and_stale_reads_are_counted_as_errors() {
    let _x = exclusive();
    let sc = scenario(SCENARIO);
    for stale in [false, true] {
        let (server, log) = store(stale);
        let dir = tempfile::tempdir().unwrap();
        let out = runner::run(&sc, &options(&server.url(), dir.path())).unwrap();
        let doc = out.doc();
        let writes = &doc.series["tag:settings-write"];
        let reads = &doc.series["tag:read-your-writes"];
        assert!(writes.requests >= 150, "{} writes", writes.requests);
        assert_eq!(reads.requests, writes.requests, "one read-back per successful write");
        assert_eq!(doc.series["step:write.read-back"].requests, reads.requests);
        if stale {
            assert_eq!(reads.stale_reads, reads.requests, "every read-back saw the previous value");
            assert_eq!(reads.errors, reads.requests);
            assert_eq!(doc.series["*"].stale_reads, reads.stale_reads);
        } else {
            assert_eq!(reads.stale_reads, 0);
            assert_eq!(doc.series["*"].errors, 0);
        }
        // A per-user list keeps one value per user, for writes and read-backs alike.
        let mut uas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, ua) in log.lock().unwrap().iter().filter(|(p, _)| p.starts_with("/kv/")) {
            uas.entry(path.clone()).or_default().insert(ua.clone());
        }
        assert_eq!(uas.len(), 6, "{uas:?}");
        assert!(uas.values().all(|set| set.len() == 1), "{uas:?}");
        assert!(uas.values().flatten().collect::<BTreeSet<_>>().len() > 1, "users differ: {uas:?}");
    }
}

#[test]
fn list_errors_name_the_position() {
    let bad = SCENARIO.replace("{{list.color}}-{{iteration}}\", headers", "{{list.colour}}\", headers");
    let e = harness::scenario::parse(std::path::Path::new("s.toml"), &bad, &|_| None).unwrap_err();
    assert!(e.message.contains("list.colour") && e.message.contains("color"), "{e}");
    assert!(e.line > 1, "{e}");
    let anon = SCENARIO.replace("[users]\ncount = 6\npick = \"uniform\"\n", "").replace("{{user.index}}", "x");
    let e = harness::scenario::parse(std::path::Path::new("s.toml"), &anon, &|_| None).unwrap_err();
    assert!(e.message.contains("per = \"user\"") && e.message.contains("[users]"), "{e}");
    let empty = SCENARIO.replace("values = [\"red\", \"green\", \"blue\", \"cyan\"]", "values = []");
    let e = harness::scenario::parse(std::path::Path::new("s.toml"), &empty, &|_| None).unwrap_err();
    assert!(e.to_string().starts_with("s.toml:") && e.message.contains("no values"), "{e}");
}
