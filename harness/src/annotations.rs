//! Response annotations: the headers a target may add to its answers to say
//! what it did (cache outcomes, its own timings, backend operations). The client
//! keeps them and the recorder reads each one present, whatever the target
//! (ARCHITECTURE.md, "Targets"): this project's worker sends all three,
//! Server-Timing is a W3C standard any API may send. A leaf: it imports nothing.

/// `x-cache: bot=hit,user-models=miss`: each cache layer's outcome.
pub const X_CACHE: &str = "x-cache";
/// `Server-Timing: kv;dur=1.2, total;dur=3.4`: the server's own timings.
pub const SERVER_TIMING: &str = "server-timing";
/// `x-ops: kv-read=2,kv-write=0,d1-read=1,d1-write=0`: backend operations.
pub const X_OPS: &str = "x-ops";

/// `x-cache: bot=hit,user-models=miss` → pairs; `none` → nothing.
pub fn parse_x_cache(value: &str) -> Vec<(&str, &str)> {
    value
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .map(|(l, o)| (l.trim(), o.trim()))
        .filter(|(l, o)| !l.is_empty() && !o.is_empty())
        .collect()
}

/// `Server-Timing: bot;desc=hit;dur=0.4, kv;dur=1.2` → (name, µs) for entries with a duration.
pub fn parse_server_timing(value: &str) -> Vec<(&str, u64)> {
    value
        .split(',')
        .filter_map(|entry| {
            let mut params = entry.split(';');
            let name = params.next()?.trim();
            let dur = params.find_map(|p| p.trim().strip_prefix("dur="))?.trim().parse::<f64>().ok()?;
            (!name.is_empty() && dur >= 0.0).then_some((name, (dur * 1000.0).round() as u64))
        })
        .collect()
}

/// `x-ops: kv-read=2,kv-write=0` → (kind, count) pairs.
pub fn parse_ops(value: &str) -> impl Iterator<Item = (&str, u64)> {
    value
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .filter_map(|(k, n)| Some((k.trim(), n.trim().parse().ok()?)))
}
