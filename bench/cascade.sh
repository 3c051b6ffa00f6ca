#!/usr/bin/env bash
# make bench-cascade: a three-level cascade (province ← city ← county) as three yunshi
# processes on loopback, measured with yunshi-loadtest: venues publish at the county (or at
# every level, CASCADE_EVERY_LEVEL=1); viewers watch the room's main stream from the county,
# then the city (one hop), then the province (two hops). Reports the
# latency each hop adds (capture time → arrival, from abs-capture-time, which every hop
# forwards), loss, and each node's CPU. Results: bench/out/cascade.json and the table on stdout.
#
# Settings (environment):
#   CASCADE_VENUES   publishers at the county (default 10)
#   CASCADE_EVERY_LEVEL  1: as many venues again at the city and the province (default 0: the
#                    viewers watch each room's main stream, which is then not necessarily the
#                    county's venue, so the latency is not per hop; use it for the load only)
#   CASCADE_VIEWERS  viewers at each level, one level at a time (default 5)
#   CASCADE_WIDTH/CASCADE_HEIGHT/CASCADE_KBPS  venue video (default 1280x720, 1500 kbit/s)
#   CASCADE_LAYERS   simulcast encodings per venue (default 1); they cross the links whole
#   CASCADE_VIEWER_HEIGHT  the viewers' player height in pixels, told with WHEP's layer
#                    extension (default: full size); with CASCADE_LAYERS=3 and 180, every
#                    link carries the lowest encoding only
#   CASCADE_SECONDS  measured seconds per phase (default 15)
# The three servers and the tool share this machine's cores (no pinning: 4 processes, 2 cores
# here), so CPU shares are of one core each and latency includes their contention.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
PASSWORD=bench-Admin-pw-2026
SECRET=bench-cascade-secret-2026
VENUES=${CASCADE_VENUES:-10}; VIEWERS=${CASCADE_VIEWERS:-5}
EVERY=()
[ "${CASCADE_EVERY_LEVEL:-0}" = 1 ] && EVERY=(--venues-every-level)
WIDTH=${CASCADE_WIDTH:-1280}; HEIGHT=${CASCADE_HEIGHT:-720}; KBPS=${CASCADE_KBPS:-1500}
LAYERS=${CASCADE_LAYERS:-1}
SIZE=()
[ -n "${CASCADE_VIEWER_HEIGHT:-}" ] && SIZE=(--viewer-height "$CASCADE_VIEWER_HEIGHT")
SECONDS_PER_PHASE=${CASCADE_SECONDS:-15}
mkdir -p "$OUT"
DATA=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

start() { # name http-port udp-port [parent-port]
  local args=(--http "127.0.0.1:$2" --udp-port "$3" --public-ip 127.0.0.1 --media-bind 127.0.0.1 --workers 1
              --data "$DATA/$1" --log "${CASCADE_LOG:-warn}" --node-name "$1" --cascade-secret "$SECRET")
  [ -n "${4:-}" ] && args+=(--cascade-parent "http://127.0.0.1:$4")
  YUNSHI_ADMIN_PASSWORD="$PASSWORD" ./target/release/yunshi "${args[@]}" > "$OUT/cascade-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "http://127.0.0.1:$2/healthz" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-cascade: $1 did not start"; exit 1
}
start province 18301 42300
start city 18302 42310 18301
start county 18303 42320 18302
sleep 2

./target/release/yunshi-loadtest --server http://127.0.0.1:18303 --password "$PASSWORD" \
  --width "$WIDTH" --height "$HEIGHT" --kbps "$KBPS" --layers "$LAYERS" --duration "$SECONDS_PER_PHASE" --warmup 3 --quiet \
  --json "$OUT/cascade.json" \
  cascade --levels http://127.0.0.1:18303,http://127.0.0.1:18302,http://127.0.0.1:18301 \
  --pids "${PIDS[2]},${PIDS[1]},${PIDS[0]}" --venues "$VENUES" "${EVERY[@]}" --viewers "$VIEWERS" "${SIZE[@]}"
