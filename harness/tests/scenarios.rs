//! Scenario files: every broken file gets its own message with line:col, and
//! `validate` explains a good one back.

use std::path::Path;

fn parse(text: &str) -> Result<harness::scenario::Scenario, harness::scenario::ScenarioError> {
    harness::scenario::parse(Path::new("s.toml"), text, &|name| (name == "SECRET").then(|| "x".to_owned()))
}

const GOOD: &str = r#"
name = "model-list"
flow = "mix"
[load]
executor = "constant-arrival-rate"
rate = 200
duration = "60s"
warmup = "10s"
max_in_flight = 512
[users]
count = 500
pick = { zipf = 1.1 }
[[step]]
name = "list"
weight = 3
tags = ["model-list"]
request = { method = "GET", path = "/models", headers = { cookie = "session={{user.session}}" } }
expect = { status = 200 }
[[step]]
name = "token"
tags = ["auth"]
request = { method = "POST", path = "/auth/token", headers = { cookie = "session={{user.session}}" } }
extract = { token = "/token" }
[[step]]
name = "me"
request = { path = "/auth/me", headers = { authorization = "Bearer {{vars.token}}" } }
[thresholds]
"model-list" = ["p(95) < 40ms", "error_rate < 0.1%"]
"#;

#[test]
fn a_good_scenario_is_explained() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.steps.len(), 3);
    let text = s.explain();
    for needle in [
        "constant arrival rate: 200 iterations/s for 1m",
        "10s of warm-up",
        "12000 measured iterations",
        "500 seeded users",
        "Zipf",
        "list weight 3 (60.0 %)",
        "GET /models",
        "extracts vars.token from /token",
        "model-list: p(95) < 40ms",
    ] {
        assert!(text.contains(needle), "explanation lacks {needle:?}:\n{text}");
    }
}

/// (what is broken, the file, line, column, words the message must hold)
const BROKEN: &[(&str, &str, usize, usize, &str)] = &[
    ("bad TOML", "name = \"x\"\n[load\nexecutor = 1\n", 2, 6, "expected"),
    (
        "unknown executor",
        "name = \"x\"\n[load]\nexecutor = \"constant-rate\"\nrate = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n",
        3,
        12,
        "unknown executor \"constant-rate\"",
    ),
    (
        "negative rate",
        "name = \"x\"\n[load]\nexecutor = \"constant-arrival-rate\"\nrate = -5\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n",
        4,
        8,
        "rate must be a positive number",
    ),
    (
        "missing step",
        "name = \"x\"\n[load]\nexecutor = \"constant-arrival-rate\"\nrate = 5\nduration = \"1s\"\n",
        6,
        1,
        "no steps",
    ),
    (
        "unknown template variable",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[users]\ncount = 1\n[[step]]\nname = \"a\"\nrequest = { path = \"/m/{{user.sesion}}\" }\n",
        10,
        24,
        "unknown template variable {{user.sesion}}",
    ),
    (
        "bad duration",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"10 sec\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n",
        5,
        12,
        "duration",
    ),
    (
        "unknown field",
        "name = \"x\"\nspeed = 3\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n",
        2,
        1,
        "unknown field `speed`",
    ),
    (
        "missing rate",
        "name = \"x\"\n[load]\nexecutor = \"constant-arrival-rate\"\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n",
        2,
        1,
        "rate is required",
    ),
    (
        "extracted variable never extracted",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/{{vars.token}}\" }\n",
        8,
        11,
        "no earlier step extracts \"token\"",
    ),
    (
        "bad threshold",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n[thresholds]\n\"a\" = [\"p95 < 4ms\"]\n",
        10,
        9,
        "unknown threshold metric",
    ),
    (
        "threshold on an unknown series",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n[thresholds]\n\"auth\" = [\"p(95) < 4ms\"]\n",
        10,
        1,
        "no step name or tag",
    ),
    (
        "conditional request header",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\", headers = { if-none-match = \"x\" } }\n",
        8,
        53,
        "conditional request",
    ),
    (
        "late share out of range",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nmax_late_share = 25\n[[step]]\nname = \"a\"\nrequest = { path = \"/\" }\n",
        6,
        18,
        "max_late_share is a share",
    ),
    (
        "users needed",
        "name = \"x\"\n[load]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[step]]\nname = \"a\"\nrequest = { path = \"/\", headers = { cookie = \"session={{user.session}}\" } }\n",
        1,
        1,
        "no [users]",
    ),
];

#[test]
fn each_broken_file_gets_its_own_positioned_message() {
    let mut messages = std::collections::BTreeSet::new();
    for (what, text, line, col, needle) in BROKEN {
        let e = parse(text).err().unwrap_or_else(|| panic!("{what}: parsed without error"));
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("s.toml:{line}:{col}: ")), "{what}: {shown}");
        assert!(e.message.contains(needle), "{what}: {shown:?} should contain {needle:?}");
        assert!(messages.insert(e.message.clone()), "{what}: message not specific: {shown}");
    }
}

#[test]
fn env_templates_resolve_at_load() {
    let text = "name = \"x\"\n[load]\nexecutor = \"iterations\"\niterations = 3\n[[step]]\nname = \"a\"\nrequest = { path = \"/\", headers = { x-bench-secret = \"{{env.SECRET}}\" } }\n";
    let s = parse(text).unwrap();
    assert!(s.steps[0].request.headers[0].1.is_static());
    let missing = text.replace("env.SECRET", "env.NOT_SET");
    assert!(parse(&missing).unwrap_err().message.contains("NOT_SET"));
}
