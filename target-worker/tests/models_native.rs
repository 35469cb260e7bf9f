//! Models, settings, providers and invalidation natively over SQLite and the
//! in-process KV (issue 3): correctness of the cached paths against the uncached
//! ones, read-your-writes, isolation, encryption at rest and KV faults.

mod common;

use bench_seed::{seeded_user, SeededUser};
use common::*;
use target_worker::catalogue::catalogue;
use target_worker::ApiRequest;

const SEED: u64 = 9;
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn user(index: u32) -> SeededUser {
    seeded_user(BENCH_SECRET, SEED, index)
}

fn cookie(u: &SeededUser) -> (&'static str, String) {
    ("cookie", format!("session={}", u.session_id))
}

async fn worker(vars: &[(&str, &str)]) -> TestWorker {
    let mut all = vec![("ENCRYPTION_KEY", ENCRYPTION_KEY)];
    all.extend_from_slice(vars);
    let w = TestWorker::new(config(&all));
    w.seed(4, SEED).await;
    w
}

fn as_user(method: &str, target: &str, u: &SeededUser) -> ApiRequest {
    let (k, v) = cookie(u);
    ApiRequest::new(method, target).header("user-agent", BROWSER_UA).header(k, &v)
}

fn json_req(method: &str, target: &str, u: &SeededUser, body: &str) -> ApiRequest {
    as_user(method, target, u).header("content-type", "application/json").body(body.to_owned())
}

fn ids(resp: &target_worker::ApiResponse) -> Vec<String> {
    body_json(resp)["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

fn x_cache(resp: &target_worker::ApiResponse) -> String {
    resp.header_value("x-cache").unwrap_or_default().to_owned()
}

/// A provider the seeded user has not enabled (and is not always enabled).
fn disabled_provider(w: &TestWorker, u: &SeededUser) -> String {
    w.db.conn()
        .query_row(
            "SELECT provider_id FROM provider_settings WHERE user_id = ?1 AND enabled = 0 ORDER BY provider_id LIMIT 1",
            [&u.user_id],
            |r| r.get(0),
        )
        .expect("seeded user has a disabled provider")
}

#[tokio::test]
async fn filtered_list_is_never_served_as_the_full_list() {
    let on = worker(&[]).await;
    let off = worker(&[("CACHE_MODE", "off")]).await;
    let u = user(0);
    let full_expected = ids(&off.send(as_user("GET", "/models", &u)).await);
    let vision_expected = ids(&off.send(as_user("GET", "/models?capability=vision", &u)).await);
    assert!(vision_expected.len() < full_expected.len(), "the filter must select a strict subset");

    for _ in 0..2 {
        let vision = on.send(as_user("GET", "/models?capability=vision", &u)).await;
        assert_eq!(ids(&vision), vision_expected);
        let full = on.send(as_user("GET", "/models", &u)).await;
        assert_eq!(ids(&full), full_expected, "x-cache {}", x_cache(&full));
    }
    // Both are cached, separately.
    assert_eq!(x_cache(&on.send(as_user("GET", "/models", &u)).await), "bot=hit,user-models=hit");
    assert_eq!(x_cache(&on.send(as_user("GET", "/models?capability=vision", &u)).await), "bot=hit,user-models=hit");
    let typed = on.send(as_user("GET", "/models?type=text-embeddings", &u)).await;
    assert!(ids(&typed).iter().all(|id| catalogue().get(id).unwrap().types.contains(&"text-embeddings".into())));
}

#[tokio::test]
async fn list_obeys_the_access_rule() {
    let w = worker(&[]).await;
    let u = user(1);
    let enabled: Vec<String> = {
        let mut stmt =
            w.db.conn()
                .prepare("SELECT provider_id FROM provider_settings WHERE user_id = ?1 AND enabled = 1")
                .unwrap();
        stmt.query_map([&u.user_id], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let listed = ids(&w.send(as_user("GET", "/models", &u)).await);
    let expected: Vec<String> = catalogue()
        .models
        .iter()
        .filter(|m| m.free || ["workers-ai", "mistral"].contains(&m.provider.as_str()) || enabled.contains(&m.provider))
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(listed, expected);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "sorted by id");

    // Anonymous callers: free and always-enabled only; never anything under /user.
    let anon = w.send(get("/models", &[("cf-connecting-ip", "192.0.2.1")])).await;
    assert_eq!(anon.status, 200);
    for id in ids(&anon) {
        let m = catalogue().get(&id).unwrap();
        assert!(m.free || m.provider == "workers-ai" || m.provider == "mistral", "{id}");
    }
    for path in ["/user/settings", "/user/providers"] {
        assert_eq!(w.send(get(path, &[])).await.status, 401, "{path}");
    }
}

#[tokio::test]
async fn model_by_id_gives_one_404_for_missing_and_not_yours() {
    let w = worker(&[]).await;
    let u = user(0);
    let hidden = catalogue()
        .models
        .iter()
        .find(|m| !m.free && m.provider == disabled_provider(&w, &u))
        .expect("a paid model of a disabled provider");
    let visible = &catalogue().models.iter().find(|m| m.provider == "mistral").unwrap().id;

    let ok = w.send(as_user("GET", &format!("/models/{visible}"), &u)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(body_json(&ok)["id"], visible.as_str());
    // Percent-encoded slashes name the same model.
    let encoded = w.send(as_user("GET", &format!("/models/{}", visible.replace('/', "%2F")), &u)).await;
    assert_eq!((encoded.status, encoded.body.clone()), (200, ok.body.clone()));

    let not_yours = w.send(as_user("GET", &format!("/models/{}", hidden.id), &u)).await;
    let missing = w.send(as_user("GET", "/models/openai/no-such-model", &u)).await;
    assert_eq!(not_yours.status, 404);
    assert_eq!((not_yours.status, &not_yours.body), (missing.status, &missing.body));

    let caps = w.send(as_user("GET", "/models/capabilities", &u)).await;
    assert_eq!(caps.status, 200);
    assert!(body_json(&caps)["capabilities"].as_array().unwrap().iter().any(|c| c == "vision"));
    let bad = w.send(as_user("GET", "/models?capability=telepathy", &u)).await;
    assert_eq!(bad.status, 400);
    assert!(body_text(&bad).contains("vision"), "lists the valid values: {}", body_text(&bad));
}

#[tokio::test]
async fn model_config_layer_caches_per_model() {
    let w = worker(&[]).await;
    let u = user(0);
    let path = "/models/workers-ai/llama-3.1-8b-instruct";
    assert_eq!(x_cache(&w.send(as_user("GET", path, &u)).await), "bot=miss,model-config=miss");
    let hit = w.send(as_user("GET", path, &u)).await;
    assert_eq!(x_cache(&hit), "bot=hit,model-config=hit");
    assert_eq!(body_json(&hit)["id"], "workers-ai/llama-3.1-8b-instruct");
    let other = w.send(as_user("GET", "/models/mistral/mistral-small-latest", &u)).await;
    assert_eq!(x_cache(&other), "bot=hit,model-config=miss");
}

/// Each write invalidates the user's lists: the next read is a miss and shows the
/// write, with the cache on, with no waiting.
#[tokio::test]
async fn every_write_is_read_back_immediately() {
    let w = worker(&[]).await;
    let u = user(2);
    let provider = disabled_provider(&w, &u);
    let paid_of_provider: Vec<String> =
        catalogue().models.iter().filter(|m| m.provider == provider && !m.free).map(|m| m.id.clone()).collect();
    assert!(!paid_of_provider.is_empty());

    // Warm both entries.
    for target in ["/models", "/models?capability=chat"] {
        w.send(as_user("GET", target, &u)).await;
        assert_eq!(x_cache(&w.send(as_user("GET", target, &u)).await), "bot=hit,user-models=hit");
    }
    let before = ids(&w.send(as_user("GET", "/models", &u)).await);
    assert!(paid_of_provider.iter().all(|id| !before.contains(id)));

    let body = format!(r#"{{"providerId":"{provider}","apiKey":"sk-live-123"}}"#);
    let stored = w.send(json_req("POST", "/user/store-provider-api-key", &u, &body)).await;
    assert_eq!(stored.status, 200, "{}", body_text(&stored));
    for target in ["/models", "/models?capability=chat"] {
        let after = w.send(as_user("GET", target, &u)).await;
        assert_eq!(x_cache(&after), "bot=hit,user-models=miss", "{target}");
        let listed = ids(&after);
        for id in paid_of_provider.iter().filter(|id| target == "/models" || listed.contains(id)) {
            assert!(listed.contains(id), "{target} lacks {id} right after enabling {provider}");
        }
    }
    assert!(ids(&w.send(as_user("GET", "/models", &u)).await).contains(&paid_of_provider[0]));

    for (method, target, body) in
        [("PUT", "/user/settings", r#"{"nickname":"Ada"}"#), ("POST", "/user/sync-providers", "")]
    {
        assert_eq!(x_cache(&w.send(as_user("GET", "/models", &u)).await), "bot=hit,user-models=hit");
        let resp = w.send(json_req(method, target, &u, body)).await;
        assert_eq!(resp.status, 200, "{target}: {}", body_text(&resp));
        let after = w.send(as_user("GET", "/models", &u)).await;
        assert_eq!(x_cache(&after), "bot=hit,user-models=miss", "after {target}");
    }
    assert_eq!(body_json(&w.send(as_user("GET", "/user/settings", &u)).await)["nickname"], "Ada");
}

/// A list computed before a write but stored after it must never be served.
#[tokio::test]
async fn a_late_write_behind_cannot_resurrect_stale_data() {
    let w = worker(&[]).await;
    let u = user(3);
    let provider = disabled_provider(&w, &u);
    // The read computes the old list; its write-behind has not run yet.
    let stale = w.app.handle(as_user("GET", "/models", &u)).await;
    let body = format!(r#"{{"providerId":"{provider}","apiKey":"k"}}"#);
    assert_eq!(w.app.handle(json_req("POST", "/user/store-provider-api-key", &u, &body)).await.status, 200);
    w.runtime.run_background().await; // the stale entry lands now
    let fresh = w.send(as_user("GET", "/models", &u)).await;
    assert_ne!(ids(&fresh), ids(&stale));
    assert!(ids(&fresh).iter().any(|id| catalogue().get(id).unwrap().provider == provider));
    assert_eq!(x_cache(&fresh), "bot=hit,user-models=miss");
}

#[tokio::test]
async fn users_are_isolated() {
    let w = worker(&[]).await;
    let (a, b) = (user(0), user(1));
    let b_list = ids(&w.send(as_user("GET", "/models", &b)).await);
    let b_keys: Vec<String> = w.kv.keys().into_iter().filter(|k| k.contains(&b.user_id)).collect();
    assert!(!b_keys.is_empty());
    let b_values: Vec<Option<String>> = b_keys.iter().map(|k| w.kv.raw_get(k)).collect();
    let b_settings = body_text(&w.send(as_user("GET", "/user/settings", &b)).await);
    let b_providers = body_text(&w.send(as_user("GET", "/user/providers", &b)).await);

    let provider = disabled_provider(&w, &a);
    let body = format!(r#"{{"providerId":"{provider}","apiKey":"sk-a"}}"#);
    assert_eq!(w.send(json_req("POST", "/user/store-provider-api-key", &a, &body)).await.status, 200);
    assert_eq!(w.send(json_req("PUT", "/user/settings", &a, r#"{"nickname":"A","job_role":"x"}"#)).await.status, 200);
    assert_eq!(w.send(json_req("POST", "/user/sync-providers", &a, "")).await.status, 200);

    let b_after = w.send(as_user("GET", "/models", &b)).await;
    assert_eq!(x_cache(&b_after), "bot=hit,user-models=hit", "B's entries survive A's writes");
    assert_eq!(ids(&b_after), b_list);
    assert_eq!(b_keys.iter().map(|k| w.kv.raw_get(k)).collect::<Vec<_>>(), b_values);
    assert_eq!(body_text(&w.send(as_user("GET", "/user/settings", &b)).await), b_settings);
    assert_eq!(body_text(&w.send(as_user("GET", "/user/providers", &b)).await), b_providers);
    // A sees only A.
    let a_settings = body_json(&w.send(as_user("GET", "/user/settings", &a)).await);
    assert_eq!(a_settings["nickname"], "A");
}

#[tokio::test]
async fn provider_keys_are_encrypted_at_rest_and_never_returned() {
    let w = worker(&[]).await;
    let u = user(0);
    let body = r#"{"providerId":"bedrock","apiKey":"AKIA-PLAINTEXT-KEY","secretKey":"wJalr-SECRET"}"#;
    let resp = w.send(json_req("POST", "/user/store-provider-api-key", &u, body)).await;
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    let stored_key = || -> String {
        w.db.conn()
            .query_row(
                "SELECT api_key_encrypted FROM provider_settings WHERE user_id = ?1 AND provider_id = 'bedrock'",
                [&u.user_id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let stored = stored_key();
    assert!(!stored.contains("PLAINTEXT") && !stored.contains("SECRET"));
    use base64::Engine;
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(ENCRYPTION_KEY).unwrap().try_into().unwrap();
    let plain =
        target_worker::crypto::decrypt(&key, &stored, &target_worker::crypto::row_binding(&u.user_id, "bedrock"))
            .expect("decrypts with the configured key");
    let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(plain["apiKey"], "AKIA-PLAINTEXT-KEY");
    assert_eq!(plain["secretKey"], "wJalr-SECRET");

    // Storing again uses a fresh nonce.
    w.send(json_req("POST", "/user/store-provider-api-key", &u, body)).await;
    let again = stored_key();
    assert_ne!(again, stored);

    let providers = w.send(as_user("GET", "/user/providers", &u)).await;
    let text = body_text(&providers);
    assert!(!text.contains("AKIA") && !text.contains(&stored) && !text.contains("api_key_encrypted"), "{text}");
    let bedrock = body_json(&providers)["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider_id"] == "bedrock")
        .cloned()
        .unwrap();
    assert_eq!(bedrock, serde_json::json!({"provider_id": "bedrock", "enabled": true, "has_api_key": true}));

    let no_key = TestWorker::new(config(&[]));
    no_key.seed(1, SEED).await;
    let resp = no_key.send(json_req("POST", "/user/store-provider-api-key", &u, body)).await;
    assert_eq!(resp.status, 500);
    assert!(body_text(&resp).contains("ENCRYPTION_KEY"));
}

#[tokio::test]
async fn settings_updates_are_partial_and_validated() {
    let w = worker(&[]).await;
    let u = user(0);
    let put = |body: &str| json_req("PUT", "/user/settings", &u, body);
    let r = w.send(put(r#"{"nickname":"Ada","tracking_enabled":false,"embedding_provider":"openai"}"#)).await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let r = w.send(put(r#"{"job_role":"engineer"}"#)).await;
    let s = body_json(&r);
    assert_eq!(s["nickname"], "Ada", "a partial update keeps other fields");
    assert_eq!(s["job_role"], "engineer");
    assert_eq!(s["tracking_enabled"], false);
    assert_eq!(s["guardrails_enabled"], false);
    assert_eq!(s["embedding_provider"], "openai");
    let r = w.send(put(r#"{"nickname":null}"#)).await;
    assert_eq!(body_json(&r)["nickname"], serde_json::Value::Null);
    assert_eq!(body_json(&r)["job_role"], "engineer");

    for (body, needle) in [
        (r#"{"favourite_colour":"red"}"#, "favourite_colour"),
        (r#"{"tracking_enabled":"yes"}"#, "tracking_enabled"),
        (r#"{"nickname":5}"#, "nickname"),
        (r#"{"embedding_provider":"acme"}"#, "embedding_provider"),
        (r#"{"nickname":"ok""#, "EOF"),
        (r#"["nickname"]"#, "expected a map"),
        ("", "empty"),
    ] {
        let r = w.send(put(body)).await;
        assert_eq!(r.status, 400, "{body}: {}", body_text(&r));
        let msg = body_json(&r)["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(needle), "{body}: {msg:?} should mention {needle:?}");
    }
    for (body, needle) in [
        (r#"{"providerId":"acme","apiKey":"k"}"#, "acme"),
        (r#"{"providerId":"openai"}"#, "apiKey"),
        (r#"{"providerId":"openai","apiKey":""}"#, "apiKey"),
        (r#"{"providerId":"openai","apiKey":"k","extra":1}"#, "extra"),
    ] {
        let r = w.send(json_req("POST", "/user/store-provider-api-key", &u, body)).await;
        assert_eq!(r.status, 400, "{body}: {}", body_text(&r));
        assert!(body_text(&r).contains(needle), "{body}: {}", body_text(&r));
    }
}

#[tokio::test]
async fn sync_creates_only_missing_rows() {
    let w = worker(&[]).await;
    let u = user(0);
    w.db.conn()
        .execute("DELETE FROM provider_settings WHERE user_id = ?1 AND provider_id <> 'openai'", [&u.user_id])
        .unwrap();
    let openai_before: i64 =
        w.db.conn()
            .query_row("SELECT enabled FROM provider_settings WHERE user_id = ?1", [&u.user_id], |r| r.get(0))
            .unwrap();
    let r = w.send(json_req("POST", "/user/sync-providers", &u, "")).await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let body = body_json(&r);
    let n = target_worker::providers::PROVIDERS.len();
    assert_eq!(body["created"], n - 1);
    let list = body["providers"].as_array().unwrap();
    assert_eq!(list.len(), n);
    for p in list {
        let id = p["provider_id"].as_str().unwrap();
        let expected = match id {
            "workers-ai" | "mistral" => true,
            "openai" => openai_before == 1,
            _ => false,
        };
        assert_eq!(p["enabled"], expected, "{id}");
    }
    let again = w.send(json_req("POST", "/user/sync-providers", &u, "")).await;
    assert_eq!(body_json(&again)["created"], 0);
}

/// The read routes a client can call, for a user and an anonymous caller.
fn read_requests() -> Vec<ApiRequest> {
    let u = user(1);
    let (k, v) = cookie(&u);
    let mut reqs = Vec::new();
    for target in [
        "/models",
        "/models?capability=vision",
        "/models?type=text-generation",
        "/models?capability=reasoning&type=text-generation",
        "/models/capabilities",
        "/models/mistral/mistral-large-latest",
        "/models/openai/gpt-4.1",
        "/models/anthropic/claude-opus-4",
        "/models/openai/no-such-model",
        "/models?capability=telepathy",
        "/user/settings",
        "/user/providers",
        "/auth/me",
    ] {
        reqs.push(ApiRequest::new("GET", target).header("user-agent", BROWSER_UA).header(k, &v));
        reqs.push(ApiRequest::new("GET", target).header("user-agent", BROWSER_UA));
        reqs.push(ApiRequest::new("GET", target).header("user-agent", "curl/8.5.0"));
    }
    reqs
}

async fn answers(w: &TestWorker, reqs: Vec<ApiRequest>, extra: &[(&str, &str)]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for req in reqs {
        let req = extra.iter().fold(req, |r, (k, v)| r.header(k, v));
        let resp = w.send(req).await;
        out.push((resp.status, resp.body));
    }
    out
}

#[tokio::test]
async fn cache_on_and_off_answer_byte_for_byte_the_same() {
    let off = worker(&[("CACHE_MODE", "off")]).await;
    let on = worker(&[]).await;
    let reference = answers(&off, read_requests(), &[]).await;
    // Twice: the first pass fills the caches (misses), the second is served from them.
    for pass in ["miss", "hit"] {
        let got = answers(&on, read_requests(), &[]).await;
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            assert_eq!(
                (g.0, String::from_utf8_lossy(&g.1)),
                (r.0, String::from_utf8_lossy(&r.1)),
                "{pass} pass, request {i}: {:?}",
                read_requests()[i].path
            );
        }
    }
    assert!(on.kv.keys().iter().any(|k| k.starts_with("user-models:")));
    assert!(on.kv.keys().iter().any(|k| k.starts_with("model-config:")));
}

#[tokio::test]
async fn kv_faults_leave_every_answer_unchanged() {
    let off = worker(&[("CACHE_MODE", "off")]).await;
    let reference = answers(&off, read_requests(), &[]).await;
    for fault in ["error", "garbage"] {
        // The breaker stays shut here: this test is about every answer under a
        // failing KV (faults_native.rs tests the breaker).
        let on = worker(&[("KV_BREAKER_FAILURES", "100000")]).await;
        // Warm the caches first, so the faults hit real entries too.
        answers(&on, read_requests(), &[]).await;
        let got = answers(&on, read_requests(), &[("x-bench-secret", BENCH_SECRET), ("x-bench-kv-fault", fault)]).await;
        assert_eq!(got, reference, "fault {fault}");
        let resp = on
            .send(
                as_user("GET", "/models", &user(1))
                    .header("x-bench-secret", BENCH_SECRET)
                    .header("x-bench-kv-fault", fault),
            )
            .await;
        assert_eq!(x_cache(&resp), "bot=error,user-models=error", "{fault}");
        assert!(on.runtime.logs.borrow().iter().all(|l| l.contains(r#""event":"cache_failure""#)));
    }
}

#[tokio::test(start_paused = true)]
async fn slow_kv_times_out_and_the_answer_is_computed() {
    let off = worker(&[("CACHE_MODE", "off")]).await;
    let reference = answers(&off, read_requests(), &[]).await;
    let on = worker(&[("KV_TIMEOUT_MS", "50"), ("KV_BREAKER_FAILURES", "100000")]).await;
    answers(&on, read_requests(), &[]).await;
    let slow = [("x-bench-secret", BENCH_SECRET), ("x-bench-kv-fault", "slow:5000")];
    assert_eq!(answers(&on, read_requests(), &slow).await, reference);
    let resp = on
        .send(
            as_user("GET", "/models/openai/gpt-4.1", &user(1))
                .header(slow[0].0, slow[0].1)
                .header(slow[1].0, slow[1].1),
        )
        .await;
    assert_eq!(x_cache(&resp), "bot=error,model-config=error");
    assert!(on.runtime.logs.borrow().iter().any(|l| l.contains("timed out after 50 ms")));
}

#[tokio::test]
async fn kv_fault_header_needs_the_secret() {
    let w = worker(&[]).await;
    let u = user(0);
    w.send(as_user("GET", "/models", &u)).await;
    let ignored = w.send(as_user("GET", "/models", &u).header("x-bench-kv-fault", "error")).await;
    assert_eq!(x_cache(&ignored), "bot=hit,user-models=hit");
    let bad = w
        .send(as_user("GET", "/models", &u).header("x-bench-secret", BENCH_SECRET).header("x-bench-kv-fault", "flaky"))
        .await;
    assert_eq!(bad.status, 400);
    assert!(body_text(&bad).contains("flaky"));
}

#[tokio::test]
async fn overridden_off_arm_still_invalidates_the_on_arm() {
    // One deployment, both arms of an interleaved A/B run.
    let w = worker(&[]).await;
    let u = user(2);
    w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(x_cache(&w.send(as_user("GET", "/models", &u)).await), "bot=hit,user-models=hit");
    let provider = disabled_provider(&w, &u);
    let body = format!(r#"{{"providerId":"{provider}","apiKey":"k"}}"#);
    let write = json_req("POST", "/user/store-provider-api-key", &u, &body)
        .header("x-bench-secret", BENCH_SECRET)
        .header("x-bench-cache", "off");
    assert_eq!(w.send(write).await.status, 200);
    let after = w.send(as_user("GET", "/models", &u)).await;
    assert_eq!(x_cache(&after), "bot=hit,user-models=miss");
    assert!(ids(&after).iter().any(|id| catalogue().get(id).unwrap().provider == provider));

    // A deployment with the layer off and no override reads nothing, but still
    // invalidates with one write after the response (issue 28: entries written
    // while the cache was on must not be served when it is on again); `x-ops`
    // counts what serving the request cost, which excludes it.
    let off = worker(&[("CACHE_MODE", "off")]).await;
    let calls = off.kv.calls();
    let resp = off.app.handle(json_req("PUT", "/user/settings", &u, r#"{"nickname":"n"}"#)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(off.kv.calls().total(), calls.total(), "nothing before the response");
    assert!(resp.header_value("x-ops").unwrap().contains("kv-write=0"), "{:?}", resp.header_value("x-ops"));
    off.runtime.run_background().await;
    assert_eq!((off.kv.calls().put - calls.put, off.kv.calls().get - calls.get), (1, 0), "one write, no read");
}

#[tokio::test]
async fn bad_requests_on_the_new_routes() {
    let w = worker(&[]).await;
    let u = user(0);
    let r = w.send(as_user("POST", "/models", &u)).await;
    assert_eq!((r.status, r.header_value("allow")), (405, Some("GET")));
    let r = w.send(as_user("DELETE", "/user/settings", &u)).await;
    assert_eq!((r.status, r.header_value("allow")), (405, Some("GET, PUT")));
    let r = w.send(as_user("GET", "/user/nothing", &u)).await;
    assert_eq!(r.status, 404);
    let r = w.send(json_req("PUT", "/user/settings", &u, &format!(r#"{{"traits":"{}"}}"#, "x".repeat(70_000)))).await;
    assert_eq!(r.status, 413);
    w.db.set_failing(true);
    for target in ["/models", "/user/settings", "/user/providers", "/models/openai/gpt-4.1"] {
        let r = w.send(as_user("GET", target, &u)).await;
        assert_eq!(r.status, 503, "{target}: {}", body_text(&r));
        assert!(body_json(&r)["error"].is_string());
    }
}

/// Issue 28, finding 6: a write made while the cache is off by configuration
/// still invalidates (after the response), so turning the cache on again within
/// a TTL — or a gradual deployment running both configurations on one KV —
/// never serves a list written before the change.
#[tokio::test]
async fn a_write_with_the_cache_switched_off_still_invalidates_for_when_it_is_on() {
    let on = worker(&[]).await;
    let off_config = config(&[("ENCRYPTION_KEY", ENCRYPTION_KEY), ("CACHE_MODE", "off")]);
    let off = target_worker::App::new(on.kv.clone(), on.db.clone(), on.runtime.clone(), off_config);
    let u = user(3);
    let provider = disabled_provider(&on, &u);
    on.send(as_user("GET", "/models", &u)).await;
    assert_eq!(x_cache(&on.send(as_user("GET", "/models", &u)).await), "bot=hit,user-models=hit");
    // The same user writes through the cache-off deployment.
    let body = format!(r#"{{"providerId":"{provider}","apiKey":"sk-live-123"}}"#);
    let stored = off.handle(json_req("POST", "/user/store-provider-api-key", &u, &body)).await;
    assert_eq!(stored.status, 200, "{}", body_text(&stored));
    assert_eq!(stored.header_value("x-cache"), Some("bot=off"), "the cache-off deployment reads no cache");
    on.runtime.run_background().await;
    // With the cache on again: not the list from before the write.
    let after = on.send(as_user("GET", "/models", &u)).await;
    assert_eq!(x_cache(&after), "bot=hit,user-models=miss");
    let paid = catalogue().models.iter().find(|m| m.provider == provider && !m.free).expect("a paid model").id.clone();
    assert!(ids(&after).contains(&paid), "the list shows {provider}'s {paid}");
}

/// Issue 28, finding 6: a read that times out is answered without (the request
/// does not wait), but is left to finish after the response, so the location's
/// edge cache still fills: where cold reads are slower than the time-out, an
/// abandoned read never warmed the location and every request timed out again.
#[tokio::test(start_paused = true)]
async fn a_timed_out_read_still_warms_its_location() {
    let w = worker(&[("KV_TIMEOUT_MS", "50"), ("LATENCY_PROFILE", "edge-near-primary")]).await;
    target_worker::modelled::clear_edge();
    let slow = as_user("GET", "/models/capabilities", &user(1))
        .header("x-bench-secret", BENCH_SECRET)
        .header("x-bench-kv-fault", "slow:200");
    let resp = w.app.handle(slow).await;
    assert_eq!(x_cache(&resp), "bot=error", "the answer did not wait for KV");
    assert_eq!(target_worker::modelled::edge_len(), 0, "nothing read yet");
    w.runtime.run_background().await;
    assert!(target_worker::modelled::edge_len() > 0, "the read finished after the response and filled the edge");
}
