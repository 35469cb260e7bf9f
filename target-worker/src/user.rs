//! `/user/*` (ARCHITECTURE.md, "Cache layers"): settings and provider settings of the calling user.
//! Each write invalidates the user's cached model lists before it answers.

use serde::Deserialize;

use crate::auth::Identity;
use crate::context::RequestContext;
use crate::crypto;
use crate::http::{parse_json_body, ApiError, ApiResponse, Failure};
use crate::layers::user_models::invalidate_user;
use crate::platform::{Database, Kv, SqlValue, Statement};
use crate::providers::{is_known, PROVIDERS};

const MAX_TEXT: usize = 4000;
const MAX_API_KEY: usize = 4096;

pub async fn get_settings<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    let settings = ctx.store.user_settings(identity.require_user()?).await?;
    Ok(ApiResponse::json(200, &settings))
}

#[derive(Clone, Copy)]
enum FieldKind {
    /// A string (up to [`MAX_TEXT`] characters) or null.
    Text,
    /// A known provider id or null.
    Provider,
    Bool,
}

/// The fields `PUT /user/settings` accepts, in the column order of the upsert.
const SETTINGS_FIELDS: [(&str, FieldKind); 8] = [
    ("nickname", FieldKind::Text),
    ("job_role", FieldKind::Text),
    ("traits", FieldKind::Text),
    ("preferences", FieldKind::Text),
    ("tracking_enabled", FieldKind::Bool),
    ("guardrails_enabled", FieldKind::Bool),
    ("memories_save_enabled", FieldKind::Bool),
    ("embedding_provider", FieldKind::Provider),
];

/// Defaults of a new row, in [`SETTINGS_FIELDS`] order (as the schema's defaults).
fn default_value(kind: FieldKind, name: &str) -> SqlValue {
    match (kind, name) {
        (FieldKind::Bool, "guardrails_enabled") => SqlValue::Integer(0),
        (FieldKind::Bool, _) => SqlValue::Integer(1),
        _ => SqlValue::Null,
    }
}

fn field_value(name: &str, kind: FieldKind, value: &serde_json::Value) -> Result<SqlValue, ApiError> {
    use serde_json::Value;
    match (kind, value) {
        (FieldKind::Text | FieldKind::Provider, Value::Null) => Ok(SqlValue::Null),
        (FieldKind::Text, Value::String(s)) if s.chars().count() <= MAX_TEXT => Ok(SqlValue::Text(s.clone())),
        (FieldKind::Text, Value::String(_)) => {
            Err(ApiError::bad_request(format!("field {name}: longer than {MAX_TEXT} characters")))
        }
        (FieldKind::Text, _) => Err(ApiError::bad_request(format!("field {name}: expected a string or null"))),
        (FieldKind::Provider, Value::String(s)) if is_known(s) => Ok(SqlValue::Text(s.clone())),
        (FieldKind::Provider, _) => {
            Err(ApiError::bad_request(format!("field {name}: expected null or one of {}", PROVIDERS.join(", "))))
        }
        (FieldKind::Bool, Value::Bool(b)) => Ok(SqlValue::Integer(*b as i64)),
        (FieldKind::Bool, _) => Err(ApiError::bad_request(format!("field {name}: expected true or false"))),
    }
}

/// `PUT /user/settings`: a partial update. Fields left out keep their value; one
/// statement does it, so concurrent partial updates of different fields both land.
pub async fn put_settings<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    let user_id = identity.require_user()?;
    let body: serde_json::Map<String, serde_json::Value> = parse_json_body(ctx.req)?;
    if let Some(unknown) = body.keys().find(|k| !SETTINGS_FIELDS.iter().any(|(name, _)| name == k)) {
        let known: Vec<&str> = SETTINGS_FIELDS.iter().map(|(n, _)| *n).collect();
        return Err(
            ApiError::bad_request(format!("unknown field {unknown:?}; known fields: {}", known.join(", "))).into()
        );
    }
    // ?1 user, ?2 now, then per field: value (?3, ?5, …) and "was given" (?4, ?6, …).
    let mut params: Vec<SqlValue> = vec![user_id.into(), ctx.now_seconds().into()];
    for (name, kind) in SETTINGS_FIELDS {
        match body.get(name) {
            Some(v) => params.extend([field_value(name, kind, v)?, SqlValue::Integer(1)]),
            None => params.extend([default_value(kind, name), SqlValue::Integer(0)]),
        }
    }
    ctx.store
        .execute(
            "INSERT INTO user_settings (user_id, updated_at, nickname, job_role, traits, preferences, \
             tracking_enabled, guardrails_enabled, memories_save_enabled, embedding_provider) \
             VALUES (?1, ?2, ?3, ?5, ?7, ?9, ?11, ?13, ?15, ?17) \
             ON CONFLICT(user_id) DO UPDATE SET updated_at = excluded.updated_at, \
             nickname = CASE WHEN ?4 THEN excluded.nickname ELSE nickname END, \
             job_role = CASE WHEN ?6 THEN excluded.job_role ELSE job_role END, \
             traits = CASE WHEN ?8 THEN excluded.traits ELSE traits END, \
             preferences = CASE WHEN ?10 THEN excluded.preferences ELSE preferences END, \
             tracking_enabled = CASE WHEN ?12 THEN excluded.tracking_enabled ELSE tracking_enabled END, \
             guardrails_enabled = CASE WHEN ?14 THEN excluded.guardrails_enabled ELSE guardrails_enabled END, \
             memories_save_enabled = CASE WHEN ?16 THEN excluded.memories_save_enabled ELSE memories_save_enabled END, \
             embedding_provider = CASE WHEN ?18 THEN excluded.embedding_provider ELSE embedding_provider END",
            &params,
        )
        .await?;
    invalidate_user(ctx, user_id).await?;
    let settings = ctx.store.user_settings(user_id).await?;
    Ok(ApiResponse::json(200, &settings))
}

pub async fn providers<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    let list = ctx.store.provider_settings(identity.require_user()?).await?;
    Ok(ApiResponse::json(200, &serde_json::json!({ "providers": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StoreKeyRequest {
    provider_id: String,
    api_key: String,
    #[serde(default)]
    secret_key: Option<String>,
}

/// `POST /user/store-provider-api-key`: encrypts the key (and optional secret) and
/// enables the provider.
pub async fn store_provider_api_key<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    let user_id = identity.require_user()?;
    let request: StoreKeyRequest = parse_json_body(ctx.req)?;
    if !is_known(&request.provider_id) {
        return Err(ApiError::bad_request(format!(
            "unknown providerId {:?}; valid: {}",
            request.provider_id,
            PROVIDERS.join(", ")
        ))
        .into());
    }
    let too_long = |s: &str| s.len() > MAX_API_KEY;
    if request.api_key.trim().is_empty() || too_long(&request.api_key) {
        return Err(ApiError::bad_request(format!("apiKey must be 1 to {MAX_API_KEY} bytes")).into());
    }
    if request.secret_key.as_deref().is_some_and(too_long) {
        return Err(ApiError::bad_request(format!("secretKey must be at most {MAX_API_KEY} bytes")).into());
    }
    let key = ctx
        .config
        .encryption_key
        .ok_or_else(|| ApiError::new(500, "cannot store provider keys: ENCRYPTION_KEY is not set"))?;
    let plaintext = serde_json::json!({ "apiKey": request.api_key, "secretKey": request.secret_key }).to_string();
    let sealed = crypto::encrypt(&key, plaintext.as_bytes(), &crypto::row_binding(user_id, &request.provider_id))
        .map_err(|e| ApiError::new(500, format!("cannot encrypt the key: {e}")))?;
    ctx.store
        .execute(
            "INSERT INTO provider_settings (id, user_id, provider_id, enabled, api_key_encrypted, updated_at) \
             VALUES (?1, ?2, ?3, 1, ?4, ?5) ON CONFLICT(user_id, provider_id) DO UPDATE SET \
             enabled = 1, api_key_encrypted = excluded.api_key_encrypted, updated_at = excluded.updated_at",
            &[
                format!("ps_{user_id}_{}", request.provider_id).into(),
                user_id.into(),
                request.provider_id.as_str().into(),
                sealed.into(),
                ctx.now_seconds().into(),
            ],
        )
        .await?;
    invalidate_user(ctx, user_id).await?;
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({ "provider_id": request.provider_id, "enabled": true, "has_api_key": true }),
    ))
}

/// `POST /user/sync-providers`: creates the missing rows, one per configurable
/// provider, enabled when the provider is always enabled. Existing rows are kept.
pub async fn sync_providers<K: Kv, D: Database>(
    ctx: &RequestContext<'_, K, D>,
    identity: &Identity,
) -> Result<ApiResponse, Failure> {
    let user_id = identity.require_user()?;
    let before = ctx.store.provider_settings(user_id).await?.len();
    let now = ctx.now_seconds();
    let statements: Vec<Statement> = PROVIDERS
        .iter()
        .map(|p| {
            let enabled = ctx.config.always_enabled(p);
            Statement::new(
                "INSERT INTO provider_settings (id, user_id, provider_id, enabled, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(user_id, provider_id) DO NOTHING",
                vec![format!("ps_{user_id}_{p}").into(), user_id.into(), (*p).into(), enabled.into(), now.into()],
            )
        })
        .collect();
    ctx.store.batch(&statements).await?;
    invalidate_user(ctx, user_id).await?;
    let list = ctx.store.provider_settings(user_id).await?;
    Ok(ApiResponse::json(200, &serde_json::json!({ "created": list.len() - before, "providers": list })))
}
