//! The worker's pipeline natively, over SQLite and the in-process KV: the
//! authentication kinds, the bot cache, the bench routes and bad input.

mod common;

use bench_seed::seeded_user;
use common::*;
use target_worker::ApiRequest;

const SEED: u64 = 42;

fn user(index: u32) -> bench_seed::SeededUser {
    seeded_user(BENCH_SECRET, SEED, index)
}

async fn seeded(vars: &[(&str, &str)]) -> TestWorker {
    let w = TestWorker::new(config(vars));
    w.seed(5, SEED).await;
    w
}

async fn token_for(w: &TestWorker, session: &str) -> String {
    let resp = w
        .send(
            ApiRequest::new("POST", "/auth/token")
                .header("user-agent", BROWSER_UA)
                .header("content-type", "application/json")
                .header("cookie", &format!("session={session}")),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    body_json(&resp)["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_jwt_cannot_renew_itself() {
    let w = seeded(&[]).await;
    let u = user(1);
    let token = token_for(&w, &u.session_id).await;
    let renewed = w
        .send(
            ApiRequest::new("POST", "/auth/token")
                .header("user-agent", BROWSER_UA)
                .header("authorization", &format!("Bearer {token}")),
        )
        .await;
    assert_eq!(renewed.status, 403, "{}", body_text(&renewed));
    assert!(body_text(&renewed).contains("session cookie or an API key"), "{}", body_text(&renewed));
    // The credentials that can end (a session, an API key) still mint tokens.
    let by_key = w
        .send(
            ApiRequest::new("POST", "/auth/token")
                .header("user-agent", BROWSER_UA)
                .header("authorization", &format!("Bearer {}", u.api_key)),
        )
        .await;
    assert_eq!(by_key.status, 200, "{}", body_text(&by_key));
}

#[tokio::test]
async fn cookie_writes_must_be_json_so_another_site_cannot_forge_them() {
    let w = seeded(&[]).await;
    let u = user(1);
    let cookie = format!("session={}", u.session_id);
    let put = |content_type: Option<&str>| {
        let mut req = ApiRequest::new("PUT", "/user/settings")
            .header("user-agent", BROWSER_UA)
            .header("cookie", &cookie)
            .body(r#"{"nickname":"x"}"#.as_bytes().to_vec());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req
    };
    // What a form or a simple cross-site fetch can send with the cookie.
    for forged in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None] {
        let resp = w.send(put(forged)).await;
        assert_eq!(resp.status, 415, "{forged:?}: {}", body_text(&resp));
        assert!(body_text(&resp).contains("application/json"), "{}", body_text(&resp));
    }
    for json in ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"] {
        let resp = w.send(put(Some(json))).await;
        assert_eq!(resp.status, 200, "{json}: {}", body_text(&resp));
    }
    // Reads with the cookie, and writes with a bearer credential, are unaffected.
    assert_eq!(w.send(get("/user/settings", &[("cookie", &cookie)])).await.status, 200);
    let by_key = ApiRequest::new("PUT", "/user/settings")
        .header("user-agent", BROWSER_UA)
        .header("authorization", &format!("Bearer {}", u.api_key))
        .header("content-type", "text/plain")
        .body(r#"{"nickname":"y"}"#.as_bytes().to_vec());
    assert_eq!(w.send(by_key).await.status, 200);
}

fn assert_401(resp: &target_worker::ApiResponse, needle: &str) {
    assert_eq!(resp.status, 401, "{}", body_text(resp));
    let msg = body_json(resp)["error"].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains(needle), "error {msg:?} should mention {needle:?}");
}

#[tokio::test]
async fn each_credential_kind_is_accepted() {
    let w = seeded(&[]).await;
    let u = user(1);
    let cookie = format!("session={}", u.session_id);
    let by_session = w.send(get("/auth/me", &[("cookie", &cookie)])).await;
    assert_eq!(by_session.status, 200, "{}", body_text(&by_session));
    let body = body_json(&by_session);
    assert_eq!(body["user"]["id"], u.user_id.as_str());
    assert_eq!(body["auth"], "session");
    assert_eq!(body["settings"]["tracking_enabled"], true);

    let bearer = format!("Bearer {}", u.api_key);
    let by_key = w.send(get("/auth/me", &[("authorization", &bearer)])).await;
    assert_eq!(by_key.status, 200, "{}", body_text(&by_key));
    assert_eq!(body_json(&by_key)["user"]["id"], u.user_id.as_str());
    assert_eq!(body_json(&by_key)["auth"], "api-key");

    let token = token_for(&w, &u.session_id).await;
    let by_jwt = w.send(get("/auth/me", &[("authorization", &format!("Bearer {token}"))])).await;
    assert_eq!(by_jwt.status, 200, "{}", body_text(&by_jwt));
    assert_eq!(body_json(&by_jwt)["user"]["id"], u.user_id.as_str());
    assert_eq!(body_json(&by_jwt)["auth"], "jwt");

    // Users are told apart: another user's key resolves to that user.
    let other = w.send(get("/auth/me", &[("authorization", &format!("Bearer {}", user(2).api_key))])).await;
    assert_eq!(body_json(&other)["user"]["id"], user(2).user_id.as_str());
}

#[tokio::test]
async fn bad_credentials_are_refused_with_401_never_anonymous() {
    let w = seeded(&[]).await;
    let u = user(0);
    assert_401(&w.send(get("/auth/me", &[("cookie", "session=not-a-real-session")])).await, "invalid session");
    assert_401(&w.send(get("/auth/me", &[("authorization", "Bearer ak_wrongwrongwrong")])).await, "invalid API key");

    let token = token_for(&w, &u.session_id).await;
    // Flip one character of the signature.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_401(&w.send(get("/auth/me", &[("authorization", &format!("Bearer {forged}"))])).await, "signature");

    // A token signed with another secret.
    let foreign = target_worker::jwt::issue("another-secret", &u.user_id, (w.clock.now_ms() / 1000.0) as i64, 600);
    assert_401(&w.send(get("/auth/me", &[("authorization", &format!("Bearer {foreign}"))])).await, "signature");

    // alg: none, no signature.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims =
        format!(r#"{{"sub":"{}","iss":"target-worker","aud":"target-worker","iat":0,"exp":9999999999}}"#, u.user_id);
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims));
    assert_401(&w.send(get("/auth/me", &[("authorization", &format!("Bearer {none}"))])).await, "none");

    // Expired JWT: the token lives an hour.
    w.clock.advance_secs(3601.0);
    assert_401(&w.send(get("/auth/me", &[("authorization", &format!("Bearer {token}"))])).await, "expired");

    // Expired session: seeded sessions live 30 days.
    w.clock.advance_secs(31.0 * 24.0 * 3600.0);
    let cookie = format!("session={}", u.session_id);
    assert_401(&w.send(get("/auth/me", &[("cookie", &cookie)])).await, "session expired");
}

#[tokio::test]
async fn malformed_credentials_get_a_json_error_naming_the_problem() {
    let w = seeded(&[]).await;
    for (header, value, needle) in [
        ("cookie", "session=", "session cookie"),
        ("cookie", "session=abc\"def", "session cookie"),
        ("authorization", "Basic dXNlcjpwYXNz", "Basic"),
        ("authorization", "Bearer", "empty"),
        ("authorization", "Bearer not a token", "malformed"),
        ("authorization", "Bearer a.b", "three"),
        ("authorization", "Bearer !!!.@@@.###", "malformed"),
        ("authorization", "Bearer e30.e30.e30", "alg"),
    ] {
        let resp = w.send(get("/auth/me", &[(header, value)])).await;
        assert_eq!(resp.status, 401, "{header}: {value} -> {}", body_text(&resp));
        let msg = body_json(&resp)["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(needle), "{header}: {value} -> {msg:?} should mention {needle:?}");
    }
}

#[tokio::test]
async fn anonymous_callers_are_not_users() {
    let w = seeded(&[]).await;
    assert_401(&w.send(get("/auth/me", &[("cf-connecting-ip", "198.51.100.7")])).await, "authentication required");
    let resp = w.send(ApiRequest::new("POST", "/auth/token").header("user-agent", BROWSER_UA)).await;
    assert_401(&resp, "authentication required");
}

#[tokio::test]
async fn anonymous_bots_are_refused_but_authenticated_bots_pass() {
    let w = seeded(&[]).await;
    assert_401(&w.send(ApiRequest::new("GET", "/auth/me")).await, "bot access is not allowed");
    assert_401(
        &w.send(
            ApiRequest::new("GET", "/auth/me").header("user-agent", "Googlebot/2.1 (+http://www.google.com/bot.html)"),
        )
        .await,
        "bot access is not allowed",
    );
    let resp = w
        .send(
            ApiRequest::new("GET", "/auth/me")
                .header("user-agent", "curl/8.5.0")
                .header("authorization", &format!("Bearer {}", user(0).api_key)),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
}

#[tokio::test]
async fn a_bench_client_can_skip_the_bot_check_and_no_one_else_can() {
    let w = seeded(&[]).await;
    let crawler = |extra: &[(&str, &str)]| {
        let mut req = ApiRequest::new("GET", "/models/capabilities").header("user-agent", "curl/8.5.0");
        for (k, v) in extra {
            req = req.header(k, v);
        }
        req
    };
    let kv_before = w.kv.calls().total();
    // Skipped: no verdict asked of the cache (no bot entry in x-cache, no KV
    // call), and the crawler is taken as no bot.
    let skipped = w.send(crawler(&[("x-bench-secret", BENCH_SECRET), ("x-bench-bot-check", "skip")])).await;
    assert_eq!(skipped.status, 200, "{}", body_text(&skipped));
    assert!(
        !skipped.header_value("x-cache").unwrap_or_default().contains("bot="),
        "{:?}",
        skipped.header_value("x-cache")
    );
    assert_eq!(w.kv.calls().total(), kv_before, "a skipped check reads no verdict");
    // Without the secret the header changes nothing; a bad value is a 400 that says what is allowed.
    assert_401(&w.send(crawler(&[("x-bench-bot-check", "skip")])).await, "bot access is not allowed");
    assert_401(
        &w.send(crawler(&[("x-bench-secret", BENCH_SECRET), ("x-bench-bot-check", "run")])).await,
        "bot access is not allowed",
    );
    let bad = w.send(crawler(&[("x-bench-secret", BENCH_SECRET), ("x-bench-bot-check", "maybe")])).await;
    assert_eq!(bad.status, 400);
    assert!(body_text(&bad).contains("expected skip or run"), "{}", body_text(&bad));
}

#[tokio::test]
async fn bot_verdict_is_cached_then_expires_after_the_ttl() {
    let w = seeded(&[("CACHE_TTL_SECONDS", "120")]).await;
    let key = target_worker::bot::cache_key("curl/8.5.0");
    let req = || ApiRequest::new("GET", "/auth/me").header("user-agent", "curl/8.5.0");

    // An anonymous caller's first miss of a key is not written: made-up
    // User-Agents would each cost a KV write otherwise (finding 2 of issue 28).
    let first = w.send(req()).await;
    assert_eq!(first.header_value("x-cache"), Some("bot=miss"));
    assert_eq!((w.kv.raw_get(&key), w.kv.calls().put), (None, 0), "a first sighting is not written");
    // The second miss is. The write is fire-and-forget: not there when the
    // response is produced.
    let first = w.app.handle(req()).await;
    assert_eq!(first.header_value("x-cache"), Some("bot=miss"));
    assert_eq!(w.kv.raw_get(&key), None, "the KV write must not happen before the response");
    assert_eq!(w.runtime.pending_tasks(), 1);
    w.runtime.run_background().await;
    assert_eq!(w.kv.raw_get(&key).as_deref(), Some("1"));

    let second = w.send(req()).await;
    assert_eq!(second.header_value("x-cache"), Some("bot=hit"));
    assert_eq!(second.status, 401);
    assert!(second.header_value("server-timing").unwrap().starts_with("bot;desc=hit;dur="));

    w.clock.advance_secs(119.0);
    assert_eq!(w.send(req()).await.header_value("x-cache"), Some("bot=hit"));
    w.clock.advance_secs(2.0);
    assert_eq!(w.send(req()).await.header_value("x-cache"), Some("bot=miss"), "entry must expire after 120 s");

    // Browsers are cached as humans under their own key.
    w.send(get("/auth/me", &[])).await;
    w.send(get("/auth/me", &[])).await;
    assert_eq!(w.kv.raw_get(&target_worker::bot::cache_key(BROWSER_UA)).as_deref(), Some("0"));
}

#[tokio::test]
async fn layer_off_makes_no_kv_calls() {
    for vars in [vec![("CACHE_MODE", "off")], vec![("CACHE_LAYERS", "model-config,user-models")]] {
        let w = seeded(&vars).await;
        let before = w.kv.calls();
        for ua in ["curl/8.5.0", BROWSER_UA, ""] {
            let resp = w
                .send(
                    ApiRequest::new("GET", "/auth/me")
                        .header("user-agent", ua)
                        .header("cookie", &format!("session={}", user(0).session_id)),
                )
                .await;
            assert_eq!(resp.header_value("x-cache"), Some("bot=off"), "{vars:?}");
            assert!(!resp.header_value("server-timing").unwrap().contains("kv;"), "{vars:?}");
        }
        assert_eq!(w.kv.calls().total(), before.total(), "{vars:?}: no KV call with the bot layer off");
    }
}

/// Status and body of a request, the parts a client sees apart from diagnostics.
async fn answer(w: &TestWorker, req: ApiRequest) -> (u16, String) {
    let resp = w.send(req).await;
    (resp.status, body_text(&resp))
}

#[tokio::test]
async fn kv_failures_give_identical_verdicts() {
    let reference = seeded(&[("CACHE_MODE", "off")]).await;
    let session = format!("session={}", user(0).session_id);
    let requests = || {
        let mut reqs = Vec::new();
        for ua in [BROWSER_UA, "curl/8.5.0", "Googlebot/2.1", "", "Mozilla/5.0 (compatible; bingbot/2.0)"] {
            reqs.push(ApiRequest::new("GET", "/auth/me").header("user-agent", ua));
            reqs.push(ApiRequest::new("GET", "/auth/me").header("user-agent", ua).header("cookie", &session));
        }
        reqs
    };
    for fault in [KvFault::Error, KvFault::Garbage] {
        // The breaker stays shut: every request here is to meet the failing KV
        // (faults_native.rs tests the breaker).
        let w = seeded(&[("KV_BREAKER_FAILURES", "100000")]).await;
        w.kv.set_fault(Some(fault));
        for (a, b) in requests().into_iter().zip(requests()) {
            let desc = format!("{fault:?} {:?}", a.headers);
            let faulty = w.send(a).await;
            assert_eq!(faulty.header_value("x-cache"), Some("bot=error"), "{desc}");
            assert_eq!((faulty.status, body_text(&faulty)), answer(&reference, b).await, "{desc}");
        }
        let logs = w.runtime.logs.borrow();
        assert!(!logs.is_empty(), "{fault:?}: failures must be logged");
        for line in logs.iter() {
            let v: serde_json::Value = serde_json::from_str(line).expect("log lines are JSON");
            assert_eq!(v["event"], "cache_failure");
            assert_eq!(v["layer"], "bot");
        }
    }
}

#[tokio::test]
async fn failed_cache_writes_are_logged_and_do_not_change_the_answer() {
    let w = seeded(&[]).await;
    w.kv.set_fault(None);
    // An anonymous first sighting is not written; the second miss is.
    w.send(get("/auth/me", &[])).await;
    let resp = w.app.handle(get("/auth/me", &[])).await;
    assert_eq!(resp.header_value("x-cache"), Some("bot=miss"));
    // The KV goes down between the response and the write-behind.
    w.kv.set_fault(Some(KvFault::Error));
    w.runtime.run_background().await;
    let logs = w.runtime.logs.borrow();
    assert_eq!(logs.len(), 1);
    assert!(logs[0].contains(r#""op":"put""#), "{}", logs[0]);
}

#[tokio::test]
async fn bench_routes_are_refused_without_the_right_secret() {
    let seed_body = r#"{"users":2,"seed":1}"#;
    let w = TestWorker::new(config(&[]));
    for secret in [None, Some("wrong"), Some(""), Some("test-bench-secret ")] {
        for path in ["/__bench/seed", "/__bench/reset"] {
            let mut req = ApiRequest::new("POST", path).body(seed_body);
            if let Some(s) = secret {
                req = req.header("x-bench-secret", s);
            }
            let resp = w.send(req).await;
            assert_eq!(resp.status, 404, "{path} with {secret:?}: {}", body_text(&resp));
        }
    }
    let count: i64 = w.db.conn().query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 0, "a refused seed must not write");

    // Not configured at all: the right-looking secret opens nothing either.
    let closed = TestWorker::new(config(&[("BENCH_SECRET", "")]));
    let resp = closed.send(ApiRequest::new("POST", "/__bench/seed").header("x-bench-secret", "").body(seed_body)).await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn bench_cache_override_needs_the_secret() {
    let w = seeded(&[]).await;
    let cookie = format!("session={}", user(0).session_id);
    // Ignored (and not an error) without the secret.
    let resp = w.send(get("/auth/me", &[("cookie", &cookie), ("x-bench-cache", "off")])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header_value("x-cache"), Some("bot=miss"));
    let resp = w.send(get("/auth/me", &[("cookie", &cookie), ("x-bench-cache", "bogus")])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header_value("x-cache"), Some("bot=hit"));
    let resp =
        w.send(get("/auth/me", &[("cookie", &cookie), ("x-bench-cache", "off"), ("x-bench-secret", "wrong")])).await;
    assert_eq!(resp.header_value("x-cache"), Some("bot=hit"));

    let with = |spec: &'static str| {
        get("/auth/me", &[("cookie", &cookie), ("x-bench-cache", spec), ("x-bench-secret", BENCH_SECRET)])
    };
    assert_eq!(w.send(with("off")).await.header_value("x-cache"), Some("bot=off"));
    assert_eq!(w.send(with("model-config")).await.header_value("x-cache"), Some("bot=off"));
    assert_eq!(w.send(with("bot")).await.header_value("x-cache"), Some("bot=hit"));
    let bad = w.send(with("bot,redis")).await;
    assert_eq!(bad.status, 400);
    assert!(body_text(&bad).contains("redis"));

    // And the other way: a cache-off deployment serves a cache-on request.
    let off = seeded(&[("CACHE_MODE", "off")]).await;
    let req = || get("/auth/me", &[("cookie", &cookie), ("x-bench-cache", "on"), ("x-bench-secret", BENCH_SECRET)]);
    assert_eq!(off.send(req()).await.header_value("x-cache"), Some("bot=miss"));
    assert_eq!(off.send(req()).await.header_value("x-cache"), Some("bot=hit"));
}

#[tokio::test]
async fn seeding_is_deterministic_and_reset_removes_it() {
    let w = seeded(&[]).await;
    // Seeding again with the same seed changes nothing and breaks nothing.
    w.seed(5, SEED).await;
    let count = |sql: &str| -> i64 { w.db.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM user"), 5);
    assert_eq!(count("SELECT COUNT(*) FROM session"), 5);
    assert_eq!(count("SELECT COUNT(*) FROM user_api_keys"), 5);
    assert_eq!(count("SELECT COUNT(*) FROM provider_settings"), 5 * target_worker::providers::PROVIDERS.len() as i64);
    // Always-enabled providers are enabled for everyone.
    assert_eq!(
        count("SELECT COUNT(*) FROM provider_settings WHERE provider_id IN ('workers-ai','mistral') AND enabled = 1"),
        10
    );
    // No plaintext key or session id is stored.
    assert_eq!(count(&format!("SELECT COUNT(*) FROM user_api_keys WHERE hashed_key = '{}'", user(0).api_key)), 0);
    assert_eq!(count(&format!("SELECT COUNT(*) FROM session WHERE id = '{}'", user(0).session_id)), 0);

    // A different seed gives a different population.
    w.seed(2, SEED + 1).await;
    assert_eq!(count("SELECT COUNT(*) FROM user"), 7);
    let other = seeded_user(BENCH_SECRET, SEED + 1, 0);
    let resp = w.send(get("/auth/me", &[("cookie", &format!("session={}", other.session_id))])).await;
    assert_eq!(resp.status, 200);

    w.send(get("/auth/me", &[])).await; // leaves a bot:… entry
    assert!(!w.kv.keys().is_empty());
    let resp = w.send(ApiRequest::new("POST", "/__bench/reset").header("x-bench-secret", BENCH_SECRET)).await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    assert_eq!(body_json(&resp)["deleted_users"], 7);
    assert_eq!(count("SELECT COUNT(*) FROM user"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM session"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM provider_settings"), 0);
    assert!(w.kv.keys().is_empty(), "reset clears the cache prefixes: {:?}", w.kv.keys());
    let cookie = format!("session={}", user(0).session_id);
    assert_401(&w.send(get("/auth/me", &[("cookie", &cookie)])).await, "invalid session");
}

#[tokio::test]
async fn bad_bench_payloads_get_400_naming_the_problem() {
    let w = TestWorker::new(config(&[]));
    for (body, needle) in [
        ("", "empty"),
        ("{", "EOF"),
        ("[1,2]", "expected a JSON object"),
        (r#"{"users":3}"#, "missing field `seed`"),
        (r#"{"users":-1,"seed":1}"#, "users"),
        (r#"{"users":"3","seed":1}"#, "invalid type"),
        (r#"{"users":0,"seed":1}"#, "between 1 and"),
        (r#"{"users":10001,"seed":1}"#, "between 1 and"),
        (r#"{"users":3,"seed":1,"admin":true}"#, "unknown field `admin`"),
        (r#"{"users":3,"seed":1} {}"#, "trailing characters"),
    ] {
        let resp =
            w.send(ApiRequest::new("POST", "/__bench/seed").header("x-bench-secret", BENCH_SECRET).body(body)).await;
        assert_eq!(resp.status, 400, "{body:?}: {}", body_text(&resp));
        let msg = body_json(&resp)["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(needle), "{body:?}: {msg:?} should mention {needle:?}");
    }
}

#[tokio::test]
async fn routing_size_and_database_errors_are_json() {
    let w = seeded(&[]).await;
    let resp = w.send(get("/nope", &[])).await;
    assert_eq!((resp.status, body_json(&resp)["error"].as_str()), (404, Some("not found")));

    let resp = w.send(ApiRequest::new("DELETE", "/auth/me").header("user-agent", BROWSER_UA)).await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header_value("allow"), Some("GET"));
    assert!(body_json(&resp)["error"].as_str().unwrap().contains("DELETE"));

    let big = vec![b'x'; 64 * 1024 + 1];
    let resp =
        w.send(ApiRequest::new("POST", "/__bench/seed").header("x-bench-secret", BENCH_SECRET).body(big.clone())).await;
    assert_eq!(resp.status, 413);
    assert!(body_json(&resp)["error"].as_str().unwrap().contains("65536"));
    let resp = w.send(ApiRequest::new("POST", "/auth/token").body(big)).await;
    assert_eq!(resp.status, 413);

    w.db.set_failing(true);
    let cookie = format!("session={}", user(0).session_id);
    let resp = w.send(get("/auth/me", &[("cookie", &cookie)])).await;
    assert_eq!(resp.status, 503, "{}", body_text(&resp));
    assert!(body_json(&resp)["error"].as_str().unwrap().contains("database"));
    assert!(w.runtime.logs.borrow().iter().any(|l| l.contains("db_failure")));
}

#[tokio::test]
async fn health_reports_the_cache_configuration_and_skips_bot_detection() {
    let w = TestWorker::new(config(&[("CACHE_LAYERS", "bot,user-models"), ("CACHE_TTL_SECONDS", "600")]));
    let resp = w.send(ApiRequest::new("GET", "/health")).await;
    assert_eq!(resp.status, 200);
    let body = body_json(&resp);
    assert_eq!(body["cache"]["mode"], "on");
    assert_eq!(body["cache"]["layers"], serde_json::json!(["bot", "user-models"]));
    assert_eq!(body["cache"]["ttl_seconds"], 600);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resp.header_value("x-cache"), Some("none"));
    assert_eq!(w.kv.calls().total(), 0);

    let off = TestWorker::new(config(&[("CACHE_MODE", "off")]));
    let body = body_json(&off.send(ApiRequest::new("GET", "/health")).await);
    assert_eq!(body["cache"]["mode"], "off");
    assert_eq!(body["cache"]["layers"], serde_json::json!([]));
}

#[tokio::test]
async fn every_response_carries_timing_and_cache_headers() {
    let w = seeded(&[]).await;
    let cookie = format!("session={}", user(0).session_id);
    for req in [get("/auth/me", &[("cookie", &cookie)]), get("/nope", &[]), ApiRequest::new("GET", "/health")] {
        let resp = w.send(req).await;
        let timing = resp.header_value("server-timing").expect("server-timing");
        assert!(timing.contains("total;dur="), "{timing}");
        assert!(resp.header_value("x-cache").is_some());
        assert_eq!(resp.header_value("cache-control"), Some("no-store"));
    }
    let resp = w.send(get("/auth/me", &[("cookie", &cookie)])).await;
    let timing = resp.header_value("server-timing").unwrap();
    for part in ["bot;desc=", "kv;dur=", "db;dur=", "total;dur="] {
        assert!(timing.contains(part), "{timing} lacks {part}");
    }
}

/// Issue 28, finding 2: anonymous callers who make up their keys (a new
/// User-Agent and model id per request, as `scenarios/abuse.toml` sends) cost
/// no KV writes with the cache on — before, one or two per request — and get
/// the answers a cache-off worker gives.
#[tokio::test]
async fn made_up_keys_from_anonymous_callers_cost_no_kv_writes() {
    let on = seeded(&[]).await;
    let off = seeded(&[("CACHE_MODE", "off")]).await;
    let requests = 1000u32;
    for i in 0..requests {
        let ua = format!("Mozilla/5.0 (X11; Linux x86_64) Gecko/{i:016x} Firefox/{i}");
        let path = if i % 4 == 0 { format!("/models/openai/made-up-{i:016x}") } else { "/models/capabilities".into() };
        let req = || ApiRequest::new("GET", &path).header("user-agent", &ua);
        let (a, b) = (off.send(req()).await, on.send(req()).await);
        assert_eq!((a.status, body_text(&a)), (b.status, body_text(&b)), "{path}: the same answer");
    }
    let writes = on.kv.calls().put;
    assert!(f64::from(writes) / f64::from(requests) <= 0.01, "{writes} KV writes for {requests} anonymous requests");
    // Keys real traffic repeats are still cached: a User-Agent seen twice is written.
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0";
    for _ in 0..2 {
        on.send(ApiRequest::new("GET", "/models/capabilities").header("user-agent", ua)).await;
    }
    let hit = on.send(ApiRequest::new("GET", "/models/capabilities").header("user-agent", ua)).await;
    assert_eq!(hit.header_value("x-cache"), Some("bot=hit"));
}

/// Issue 28, finding 6: `DIAGNOSTIC_HEADERS=off` keeps `Server-Timing`,
/// `x-cache` and `x-ops` (which layers hit, what a request cost) from every
/// client but a bench client with the secret.
#[tokio::test]
async fn diagnostic_headers_can_be_kept_from_clients() {
    let diagnostic = ["server-timing", "x-cache", "x-ops"];
    let req = || get("/models/capabilities", &[]);
    let on = seeded(&[]).await;
    let resp = on.send(req()).await;
    assert!(diagnostic.iter().all(|h| resp.header_value(h).is_some()), "on by default");
    let off = seeded(&[("DIAGNOSTIC_HEADERS", "off")]).await;
    let resp = off.send(req()).await;
    assert_eq!(resp.status, 200);
    assert!(diagnostic.iter().all(|h| resp.header_value(h).is_none()), "{:?}", resp.headers);
    let bench = off.send(req().header("x-bench-secret", BENCH_SECRET)).await;
    assert!(diagnostic.iter().all(|h| bench.header_value(h).is_some()), "the bench still sees them");
}
