//! Bench routes (ARCHITECTURE.md, "Request path"): deterministic seeding and reset. Reachable only
//! with `BENCH_SECRET` configured and sent as `x-bench-secret` (checked by the
//! pipeline before these run).

use serde::Deserialize;

use bench_seed::{enabled_providers, seeded_user};

use crate::auth::{hash_api_key, hash_secret};
use crate::context::RequestContext;
use crate::http::{parse_json_body, ApiError, ApiResponse, Failure};
use crate::platform::{Database, Kv, SqlValue, Statement};
use crate::providers::PROVIDERS;

/// Largest population a seed creates.
pub const MAX_SEED_USERS: u32 = 10_000;
/// Seeded sessions stay valid this long.
const SESSION_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// D1 statements per seeded user: user, session, API key, settings, and one row
/// per provider.
const STATEMENTS_PER_USER: usize = 4 + PROVIDERS.len();
/// Statements per D1 batch: one round trip each.
const BATCH_STATEMENTS: usize = 200;

/// `POST /__bench/seed`: seeds users `offset..` of the population `users` under
/// `seed`, as many as one invocation's budget allows (`BENCH_OPS_PER_INVOCATION`,
/// each D1 statement counted as one operation); the answer's `next_offset` says
/// where the next call goes on (`null`: done).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    users: u32,
    seed: u64,
    #[serde(default)]
    offset: u32,
}

pub async fn seed<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>) -> Result<ApiResponse, Failure> {
    let request: SeedRequest = parse_json_body(ctx.req)?;
    if !(1..=MAX_SEED_USERS).contains(&request.users) {
        return Err(ApiError::bad_request(format!(
            "users must be between 1 and {MAX_SEED_USERS}, got {}",
            request.users
        ))
        .into());
    }
    if request.offset >= request.users {
        return Err(ApiError::bad_request(format!(
            "offset must be below users ({}), got {}",
            request.users, request.offset
        ))
        .into());
    }
    let per_call = (ctx.config.bench_ops_per_invocation as usize / STATEMENTS_PER_USER).max(1) as u32;
    let end = request.users.min(request.offset.saturating_add(per_call));
    let secret = ctx.config.bench_secret.as_deref().unwrap_or_default();
    let now = ctx.now_seconds();
    let mut statements = Vec::new();
    for index in request.offset..end {
        let u = seeded_user(secret, request.seed, index);
        // Upserts, not REPLACE: REPLACE deletes the row first and the foreign keys
        // would cascade that delete into the user's other rows.
        statements.push(Statement::new(
            "INSERT INTO user (id, email, name, is_bench, created_at) VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT(id) DO UPDATE SET email = excluded.email, name = excluded.name, is_bench = 1",
            vec![u.user_id.clone().into(), u.email.into(), u.name.into(), now.into()],
        ));
        statements.push(Statement::new(
            "INSERT INTO session (id, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at",
            vec![
                hash_secret(&u.session_id).into(),
                u.user_id.clone().into(),
                (now + SESSION_TTL_SECONDS).into(),
                now.into(),
            ],
        ));
        statements.push(Statement::new(
            "INSERT INTO user_api_keys (id, user_id, name, hashed_key, created_at) VALUES (?1, ?2, 'bench', ?3, ?4) \
             ON CONFLICT(hashed_key) DO UPDATE SET user_id = excluded.user_id, revoked_at = NULL",
            vec![
                format!("key_{}", u.user_id).into(),
                u.user_id.clone().into(),
                hash_api_key(&u.api_key).into(),
                now.into(),
            ],
        ));
        statements.push(Statement::new(
            "INSERT INTO user_settings (user_id, updated_at) VALUES (?1, ?2) ON CONFLICT(user_id) DO NOTHING",
            vec![u.user_id.clone().into(), now.into()],
        ));
        let chosen = enabled_providers(secret, request.seed, index, PROVIDERS);
        for provider in PROVIDERS {
            let enabled = chosen.contains(provider) || ctx.config.always_enabled(provider);
            statements.push(Statement::new(
                "INSERT INTO provider_settings (id, user_id, provider_id, enabled, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(user_id, provider_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                vec![
                    format!("ps_{}_{provider}", u.user_id).into(),
                    u.user_id.clone().into(),
                    SqlValue::from(*provider),
                    enabled.into(),
                    now.into(),
                ],
            ));
        }
    }
    for chunk in statements.chunks(BATCH_STATEMENTS) {
        ctx.store.batch(chunk).await?;
    }
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({
            "users": request.users,
            "seed": request.seed,
            "providers_per_user": PROVIDERS.len(),
            "seeded": [request.offset, end],
            "next_offset": (end < request.users).then_some(end),
            "statements": statements.len(),
        }),
    ))
}

/// `POST /__bench/reset` (body optional: `{"cursor": "…"}` from the previous
/// call): deletes the bench users (cascading to their rows) and the anonymous
/// callers bench requests recorded, then every key of the cache namespace — this
/// worker keeps only derived entries there, of every strategy and of earlier
/// bench namespaces (`ns/…`) — one list page at a time, as many deletes as one
/// invocation's budget allows; and this isolate's `memory` layer, modelled edge
/// copies and write windows. `"done": false` means keys are left: call again
/// with the answer's `cursor`. Other isolates' memories are out of reach: a
/// bench run in a fresh namespace (`crate::namespace`) does not need them gone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    #[serde(default)]
    cursor: Option<String>,
}

pub async fn reset<K: Kv, D: Database>(ctx: &RequestContext<'_, K, D>) -> Result<ApiResponse, Failure> {
    let request: ResetRequest =
        if ctx.req.body.is_empty() { ResetRequest::default() } else { parse_json_body(ctx.req)? };
    let rows = ctx.store.query_count("SELECT COUNT(*) AS n FROM user WHERE is_bench = 1").await?;
    // Foreign keys cascade the delete to sessions, keys, settings and providers.
    ctx.store
        .batch(&[
            Statement::new("DELETE FROM user WHERE is_bench = 1", vec![]),
            Statement::new("DELETE FROM anonymous_user WHERE is_bench = 1", vec![]),
        ])
        .await?;
    crate::memory::clear();
    crate::modelled::clear_edge();
    crate::modelled::clear_write_window();
    crate::cache::clear_write_windows();
    crate::layers::user_models::clear_isolate_state();
    let budget = (ctx.config.bench_ops_per_invocation as usize).saturating_sub(3);
    let (deleted_keys, cursor) = delete_cache_keys(ctx, request.cursor, budget).await?;
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({
            "deleted_users": rows,
            "deleted_cache_keys": deleted_keys,
            "done": cursor.is_none(),
            "cursor": cursor,
        }),
    ))
}

/// Where a reset goes on: a page's cursor, or the start again (a page cut short
/// by the budget: its deleted keys no longer list).
const FROM_START: &str = "";

/// Deletes cache keys page by page from `cursor` with at most `budget`
/// operations (a list call is one); the cursor to go on from, `None` when none
/// are left.
async fn delete_cache_keys<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    mut cursor: Option<String>,
    mut budget: usize,
) -> Result<(usize, Option<String>), Failure> {
    let fail = |op: &str, key: &str, e: &crate::platform::KvError| {
        ctx.runtime
            .log(&serde_json::json!({ "event": "bench-reset-failed", "op": op, "key": key, "error": e.0 }).to_string());
        ApiError::new(503, format!("could not {op} cache key {key:?}: {e}"))
    };
    let mut deleted = 0usize;
    loop {
        if budget == 0 {
            return Ok((deleted, Some(cursor.unwrap_or_else(|| FROM_START.to_owned()))));
        }
        let from = cursor.as_deref().filter(|c| !c.is_empty());
        let page = ctx.kv.list_page("", from).await.map_err(|e| fail("list", "*", &e))?;
        budget -= 1;
        let take = page.keys.len().min(budget);
        for key in &page.keys[..take] {
            ctx.kv.delete(key).await.map_err(|e| fail("delete", key, &e))?;
        }
        deleted += take;
        budget -= take;
        if take == page.keys.len() {
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok((deleted, None)),
            }
        } else {
            // Cut short: the next call lists this page again, its deleted keys gone.
            return Ok((deleted, Some(cursor.unwrap_or_else(|| FROM_START.to_owned()))));
        }
    }
}
