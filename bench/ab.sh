#!/usr/bin/env bash
# bench/ab.sh: two (or more) yunshi server binaries measured in turn on the same load, for the
# hot path's before/after numbers in docs/benchmarks.md. This machine's CPU figures drift by up
# to ~50 % between hours, so a single run of each proves nothing: the binaries alternate, run
# after run, and each pair is printed next to each other.
#
#   bench/ab.sh BEFORE_BINARY AFTER_BINARY
#
# Each run: one webinar room (1 publisher -> N viewers, WHIP/WHEP on loopback), the server on
# core 0 with one media worker, the load tool on core 1, a fresh data directory.
# Per run it prints CPU time per delivered packet (server CPU from /proc / packets the viewers
# received), the server's RSS at the end, video p99 latency and loss; at the end, per binary,
# the mean CPU per packet at the highest count and the RSS slope per viewer between the lowest
# and the highest count.
#
# Settings (environment):
#   AB_PAIRS   rounds; each round runs every binary at every count (default 3)
#   AB_COUNTS  viewer counts (default "20 120")
#   AB_SECONDS measured seconds per run (default 15)
#   AB_VIDEO   "WIDTHxHEIGHT@KBPS" (default 1920x1080@3000, ~310 packets/s)
#   AB_ARGS    extra load-tool arguments before the scenario (e.g. "--layers 3")
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,20p "$0"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "ab: needs 2 cores (server on one, load tool on the other)"; exit 1; }
LOADTEST=${AB_LOADTEST:-./target/release/yunshi-loadtest}
[ -x "$LOADTEST" ] || { echo "ab: build the load tool first (cargo build --release -p yunshi-loadtest)"; exit 1; }
PAIRS=${AB_PAIRS:-3}; COUNTS=${AB_COUNTS:-20 120}; SECS=${AB_SECONDS:-15}
VIDEO=${AB_VIDEO:-1920x1080@3000}
W=${VIDEO%%x*}; rest=${VIDEO#*x}; H=${rest%@*}; KBPS=${VIDEO#*@}
PASSWORD=bench-Admin-pw-2026
OUT=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

run_one() { # binary viewers json
  local data="$OUT/data"; rm -rf "$data"
  YUNSHI_ADMIN_PASSWORD="$PASSWORD" taskset -c 0 "$1" --http 127.0.0.1:18180 --udp-port 41200 \
    --public-ip 127.0.0.1 --media-bind 127.0.0.1 --workers 1 --data "$data" --log warn > "$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:18180/healthz", timeout=1)' \
      2>/dev/null && break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  taskset -c 1 "$LOADTEST" --server http://127.0.0.1:18180 --password "$PASSWORD" --server-pid "$SERVER_PID" \
    --width "$W" --height "$H" --kbps "$KBPS" --duration "$SECS" --quiet --json "$3" ${AB_ARGS:-} \
    webinar --viewers "$2" > /dev/null 2> "$OUT/loadtest.log" || { cat "$OUT/loadtest.log"; return 1; }
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

printf '%-6s %-8s %-40s %10s %10s %9s %8s\n' round viewers binary "us/packet" "RSS MB" "v p99 ms" "loss %"
for round in $(seq 1 "$PAIRS"); do
  for n in $COUNTS; do
    # Alternate which binary goes first, so neither always runs on a warmer machine.
    bins=("$@"); [ $((round % 2)) -eq 0 ] && bins=($(printf '%s\n' "$@" | tac))
    for bin in "${bins[@]}"; do
      key=$(echo "$bin" | md5sum | cut -c1-8)
      json="$OUT/$key-$n-$round.json"
      run_one "$bin" "$n" "$json"
      python3 - "$json" "$round" "$n" "$bin" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["result"]; s = r.get("server", {})
print(f"{sys.argv[2]:<6} {sys.argv[3]:<8} {sys.argv[4][-40:]:<40} {s.get('us_per_packet') or 0:>10.2f} "
      f"{(s.get('rss_bytes') or 0) / 1e6:>10.1f} {r['latency_ms']['video']['p99'] or 0:>9.2f} {r['lost']['pct'] or 0:>8.3f}")
EOF
    done
  done
done

echo
python3 - "$OUT" "$COUNTS" "$@" <<'EOF'
import glob, hashlib, json, statistics, sys
out, counts, bins = sys.argv[1], [int(c) for c in sys.argv[2].split()], sys.argv[3:]
lo, hi = min(counts), max(counts)
for b in bins:
    key = hashlib.md5((b + "\n").encode()).hexdigest()[:8]
    def runs(n):
        return [json.load(open(f))["result"]["server"] for f in sorted(glob.glob(f"{out}/{key}-{n}-*.json"))]
    us = [s["us_per_packet"] for s in runs(hi) if s.get("us_per_packet")]
    line = f"{b}: {hi} viewers, CPU per packet mean {statistics.mean(us):.2f} us over {len(us)} runs"
    if lo != hi:
        slopes = [(h["rss_bytes"] - l["rss_bytes"]) / (hi - lo) / 1e3 for l, h in zip(runs(lo), runs(hi))]
        line += f"; RSS per viewer ({lo} -> {hi}) " + " / ".join(f"{s:.0f}" for s in slopes) + " KB"
    print(line)
EOF
