-- D1 schema of ARCHITECTURE.md, "Storage". Timestamps are Unix seconds. D1 enforces foreign
-- keys, so deleting a user removes everything that belongs to it.

CREATE TABLE user (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL DEFAULT '',
  -- rows created by POST /__bench/seed, removed by POST /__bench/reset
  is_bench INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

CREATE TABLE session (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES user(id) ON DELETE CASCADE,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX session_user_id ON session(user_id);

CREATE TABLE user_api_keys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES user(id) ON DELETE CASCADE,
  name TEXT NOT NULL DEFAULT '',
  -- SHA-256 hex of the key; the key itself is never stored
  hashed_key TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX user_api_keys_user_id ON user_api_keys(user_id);

CREATE TABLE user_settings (
  user_id TEXT PRIMARY KEY REFERENCES user(id) ON DELETE CASCADE,
  nickname TEXT,
  job_role TEXT,
  traits TEXT,
  preferences TEXT,
  tracking_enabled INTEGER NOT NULL DEFAULT 1,
  guardrails_enabled INTEGER NOT NULL DEFAULT 0,
  memories_save_enabled INTEGER NOT NULL DEFAULT 1,
  embedding_provider TEXT,
  updated_at INTEGER NOT NULL
);

CREATE TABLE provider_settings (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES user(id) ON DELETE CASCADE,
  provider_id TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 0,
  -- AES-256-GCM: base64(nonce || ciphertext), never plaintext
  api_key_encrypted TEXT,
  updated_at INTEGER NOT NULL,
  UNIQUE (user_id, provider_id)
);

CREATE TABLE anonymous_user (
  id TEXT PRIMARY KEY,
  first_seen_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL
);
