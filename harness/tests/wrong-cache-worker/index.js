// A worker that is wrong on purpose, for harness/tests/wrong_worker.rs: a small
// model API whose KV cache (the CACHE binding; absent in the `nocache` env, as
// the seed's own switch) stores the list it computed under the user's one key,
// whatever its filter — the bug of nicholasgriffintn/ai-platform's per-user
// model cache, written afresh here. It speaks none of this project's bench
// protocol. It counts, per isolate, the answers it served and those that differ
// from the right one (`GET /__truth`), for the test to hold the harness's
// measured rate against.

const MODELS = Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, name: `Model ${i}`, coding: i % 3 === 0 }));
const truth = { served: 0, wrong: 0 };

// A user may use every model but the one numbered as the user's last digit.
function modelsOf(user) {
  const last = Number(user.slice(-1)) || 0;
  return MODELS.filter((_, i) => i !== last).map((m) => m.id);
}

function json(status, body, wrong) {
  truth.served += 1;
  if (wrong) truth.wrong += 1;
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function list(user, ids) {
  return { user, models: MODELS.filter((m) => ids.includes(m.id)) };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const user = url.searchParams.get("user") || "anon";
    if (url.pathname === "/status") return new Response("ok");
    if (url.pathname === "/__truth") return new Response(JSON.stringify(truth));
    // Users seeded into the USERS namespace (tests/recipe.rs): an API key is
    // looked up by its SHA-256, as many workers store it.
    if (url.pathname === "/me") {
      const key = (request.headers.get("authorization") || "").replace(/^Bearer /, "");
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
      const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
      const email = env.USERS ? await env.USERS.get(`key:${hex}`) : null;
      return email ? json(200, { email }, false) : json(401, { error: "unknown API key" }, false);
    }
    const right = modelsOf(user);
    const key = `user-models:${user}`;
    // A per-request switch (tests/recipe.rs, crossed design): `x-cache-mode: off`
    // serves this request as the nocache env would.
    const cache = request.headers.get("x-cache-mode") === "off" ? null : env.CACHE;
    const cached = cache ? await cache.get(key, "json") : null;
    // Whether the user's list is cached: a fresh instance has nothing cached.
    if (url.pathname === "/__cached") return json(200, { cached: cached !== null }, false);
    if (url.pathname === "/models") {
      const served = cached || right;
      if (cache && !cached) await cache.put(key, JSON.stringify(right));
      return json(200, list(user, served), served.length !== right.length);
    }
    if (url.pathname === "/models/coding") {
      const coding = right.filter((id) => MODELS.find((m) => m.id === id).coding);
      const served = cached ? cached.filter((id) => MODELS.find((m) => m.id === id).coding) : coding;
      // The bug: the filtered list under the unfiltered key.
      if (cache && !cached) await cache.put(key, JSON.stringify(coding));
      return json(200, list(user, served), served.length !== coding.length);
    }
    const id = url.pathname.startsWith("/models/") ? url.pathname.slice("/models/".length) : null;
    if (id) {
      const allowed = right.includes(id);
      const seen = cached ? cached.includes(id) : allowed;
      if (cache && !cached && allowed) await cache.put(key, JSON.stringify([id]));
      return seen ? json(200, MODELS.find((m) => m.id === id), !allowed) : json(404, { error: `no model ${id}` }, allowed);
    }
    return json(404, { error: "no such route" }, false);
  },
};
