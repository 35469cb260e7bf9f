# Sourced by the bench scripts that measure the local stack themselves
# (bench/aa-stack, bench/calibrate-stack): `scripts/serve` in its own session
# (so its process group can be stopped as one), waited on until both workers
# answer. Sets `serve` to its PID; the caller's EXIT trap stops it with
# `kill -TERM -- "-$serve"`.

# serve_until_up LOG: starts scripts/serve (STATE and the ports from the
# environment), waits up to 240 s for "Both workers are up", then checks each
# port's /health. On failure prints the log and exits.
serve_until_up() {
  local log=$1
  setsid scripts/serve >"$log" 2>&1 </dev/null &
  serve=$!
  for _ in $(seq 1 240); do
    grep -q "Both workers are up" "$log" 2>/dev/null && break
    kill -0 "$serve" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 1
  done
  grep -q "Both workers are up" "$log" || { cat "$log" >&2; exit 1; }
  local port
  for port in "$PORT_ON" "$PORT_OFF"; do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/health" || { cat "$log" >&2; exit 1; }
  done
}
