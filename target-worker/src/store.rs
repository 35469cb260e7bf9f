//! The database service: every query the API makes, with bound parameters, timed
//! into the request's trace. The same SQL runs on D1 and, in tests, on SQLite.

use serde::Serialize;

use std::future::Future;

use crate::platform::{Database, DbError, Row, RowExt, Runtime, SqlValue, Statement};
use crate::trace::{BackendOp, RequestTrace};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
}

impl User {
    fn from_row(row: &Row) -> Result<User, DbError> {
        Ok(User { id: row.text("id")?, email: row.text("email")?, name: row.text("name")? })
    }
}

/// The user's settings as stored; defaults when the user has no row yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSettings {
    pub nickname: Option<String>,
    pub job_role: Option<String>,
    pub traits: Option<String>,
    pub preferences: Option<String>,
    pub tracking_enabled: bool,
    pub guardrails_enabled: bool,
    pub memories_save_enabled: bool,
    pub embedding_provider: Option<String>,
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings {
            nickname: None,
            job_role: None,
            traits: None,
            preferences: None,
            tracking_enabled: true,
            guardrails_enabled: false,
            memories_save_enabled: true,
            embedding_provider: None,
        }
    }
}

impl UserSettings {
    fn from_row(row: &Row) -> Result<UserSettings, DbError> {
        Ok(UserSettings {
            nickname: row.opt_text("nickname")?,
            job_role: row.opt_text("job_role")?,
            traits: row.opt_text("traits")?,
            preferences: row.opt_text("preferences")?,
            tracking_enabled: row.int("tracking_enabled")? != 0,
            guardrails_enabled: row.int("guardrails_enabled")? != 0,
            memories_save_enabled: row.int("memories_save_enabled")? != 0,
            embedding_provider: row.opt_text("embedding_provider")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderSetting {
    pub provider_id: String,
    pub enabled: bool,
    pub has_api_key: bool,
}

pub struct Store<'r, D: Database> {
    db: &'r D,
    trace: &'r RequestTrace,
    runtime: &'r dyn Runtime,
}

impl<'r, D: Database> Store<'r, D> {
    pub fn new(db: &'r D, trace: &'r RequestTrace, runtime: &'r dyn Runtime) -> Self {
        Store { db, trace, runtime }
    }

    /// Awaits a database call, adding its time to the trace's `db` entry.
    async fn timed<T>(&self, call: impl Future<Output = T>) -> T {
        let start = self.runtime.now_ms();
        let out = call.await;
        self.trace.add_db(self.runtime.now_ms() - start);
        out
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        self.trace.count(BackendOp::D1Read, 1);
        self.timed(self.db.query(sql, params)).await
    }

    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), DbError> {
        self.trace.count(BackendOp::D1Write, 1);
        self.timed(self.db.execute(sql, params)).await
    }

    /// One round trip, counted as one write.
    pub async fn batch(&self, statements: &[Statement]) -> Result<(), DbError> {
        self.trace.count(BackendOp::D1Write, 1);
        self.timed(self.db.batch(statements)).await
    }

    /// Records that the anonymous caller `id` was seen at `now` (Unix seconds), as
    /// the source API did on every anonymous request (`ANONYMOUS_USER_WRITE`).
    /// Records an anonymous caller; `bench`: first seen by a bench request, so a
    /// reset may delete the row (a row first seen by a real caller stays real).
    pub async fn touch_anonymous_user(&self, id: &str, now: i64, bench: bool) -> Result<(), DbError> {
        self.execute(
            "INSERT INTO anonymous_user (id, first_seen_at, last_seen_at, is_bench) VALUES (?1, ?2, ?2, ?3) \
             ON CONFLICT(id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
            &[id.into(), now.into(), i64::from(bench).into()],
        )
        .await
    }

    /// Runs a `SELECT COUNT(*) AS n …` without parameters.
    pub async fn query_count(&self, sql: &str) -> Result<i64, DbError> {
        let rows = self.query(sql, &[]).await?;
        rows.first().map_or(Ok(0), |r| r.int("n"))
    }

    /// The session's user and the session's expiry (Unix seconds). Sessions are
    /// stored by the SHA-256 of their id, as API keys are: a copy of the table
    /// signs no one in.
    pub async fn session_user(&self, session_id: &str) -> Result<Option<(User, i64)>, DbError> {
        let rows = self
            .query(
                "SELECT u.id, u.email, u.name, s.expires_at FROM session s JOIN user u ON u.id = s.user_id WHERE s.id = ?1",
                &[crate::auth::hash_secret(session_id).into()],
            )
            .await?;
        rows.first().map(|r| Ok((User::from_row(r)?, r.int("expires_at")?))).transpose()
    }

    /// The user owning the API key whose SHA-256 hex is `hashed_key`, unless revoked.
    pub async fn api_key_user(&self, hashed_key: &str) -> Result<Option<User>, DbError> {
        let rows = self
            .query(
                "SELECT u.id, u.email, u.name FROM user_api_keys k JOIN user u ON u.id = k.user_id \
                 WHERE k.hashed_key = ?1 AND k.revoked_at IS NULL",
                &[hashed_key.into()],
            )
            .await?;
        rows.first().map(User::from_row).transpose()
    }

    pub async fn user(&self, user_id: &str) -> Result<Option<User>, DbError> {
        let rows = self.query("SELECT id, email, name FROM user WHERE id = ?1", &[user_id.into()]).await?;
        rows.first().map(User::from_row).transpose()
    }

    /// Providers the user has switched on (a `provider_settings` row with `enabled`).
    pub async fn enabled_providers(&self, user_id: &str) -> Result<Vec<String>, DbError> {
        let rows = self
            .query(
                "SELECT provider_id FROM provider_settings WHERE user_id = ?1 AND enabled = 1 ORDER BY provider_id",
                &[user_id.into()],
            )
            .await?;
        rows.iter().map(|r| r.text("provider_id")).collect()
    }

    pub async fn provider_enabled(&self, user_id: &str, provider_id: &str) -> Result<bool, DbError> {
        let rows = self
            .query(
                "SELECT 1 AS yes FROM provider_settings WHERE user_id = ?1 AND provider_id = ?2 AND enabled = 1",
                &[user_id.into(), provider_id.into()],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// The user's provider settings; the key itself never leaves the database layer.
    pub async fn provider_settings(&self, user_id: &str) -> Result<Vec<ProviderSetting>, DbError> {
        let rows = self
            .query(
                "SELECT provider_id, enabled, api_key_encrypted IS NOT NULL AS has_api_key \
                 FROM provider_settings WHERE user_id = ?1 ORDER BY provider_id",
                &[user_id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ProviderSetting {
                    provider_id: r.text("provider_id")?,
                    enabled: r.int("enabled")? != 0,
                    has_api_key: r.int("has_api_key")? != 0,
                })
            })
            .collect()
    }

    pub async fn user_settings(&self, user_id: &str) -> Result<UserSettings, DbError> {
        let rows = self
            .query(
                "SELECT nickname, job_role, traits, preferences, tracking_enabled, guardrails_enabled, \
                 memories_save_enabled, embedding_provider FROM user_settings WHERE user_id = ?1",
                &[user_id.into()],
            )
            .await?;
        rows.first().map(UserSettings::from_row).transpose().map(Option::unwrap_or_default)
    }
}
