{#- The users of `harness users`, as the original ai-platform schema stores them
    (apps/api/migrations): a user with an integer id, a 30-day session, an API key
    stored by its SHA-256 (`user_api_keys.hashed_key`; `api_key` holds the key
    encrypted in the original, unused by the lookup), settings, and a provider
    mix that differs between users so that their model lists differ. -#}
{%- for u in users %}
INSERT INTO user (id, name, email, created_at, updated_at) VALUES ({{ u.number }}, {{ u.name | sql }}, {{ u.email | sql }}, '2025-01-01 00:00:00', '2025-01-01 00:00:00');
INSERT INTO session (id, user_id, expires_at) VALUES ({{ u.session | sql }}, {{ u.number }}, datetime('now', '+30 days'));
INSERT INTO user_api_keys (id, user_id, api_key, hashed_key, name) VALUES ('key-{{ u.number }}', {{ u.number }}, 'not-used-by-the-lookup', {{ u.api_key_sha256 | sql }}, 'bench');
INSERT INTO user_settings (id, user_id) VALUES ('settings-{{ u.number }}', {{ u.number }});
{%- for p in ["groq", "together-ai", "openrouter", "github-models"] %}
INSERT INTO provider_settings (id, provider_id, user_id, enabled) VALUES ('ps-{{ u.number }}-{{ p }}', '{{ p }}', {{ u.number }}, {{ 1 if (u.index + loop.index) % (loop.index + 1) == 0 else 0 }});
{%- endfor %}
{%- endfor %}
