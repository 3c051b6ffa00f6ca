#!/usr/bin/env bash
# make bench-capacity: yunshi and Janus measured side by side with yunshi-loadtest, in the same
# run, on this machine. Each server is pinned to core 0 and the load tool to core 1 (taskset);
# both servers run in a network namespace this script creates and deletes (Janus gathers no
# loopback candidates), on the same veth address. Results: bench/out/*.json, the plot
# docs/img/bench-capacity.png, and a summary on stdout and in docs/benchmarks.md (the block
# between the bench-capacity markers, replaced at every run; bench/summary.py).
#
# Settings (environment):
#   CAP_WIDTH/CAP_HEIGHT/CAP_KBPS  publisher video (default 1920x1080, 3000 kbit/s: ~310 pkt/s)
#   CAP_ROOMS    rooms, a publisher each, viewers spread over them (default 4)
#   CAP_STEP     viewers added per step (default 40)
#   CAP_MAX      most viewers (default 1000)
#   CAP_SECONDS  measured seconds per step (default 10)
#   CAP_SERVERS  what to measure (default "yunshi relay janus ceiling"): relay = the load tool's
#                own WHIP/WHEP relay with no SFU logic (str0m's floor, loadtest/src/relay.rs);
#                ceiling = this machine's limit with no WebRTC stack at all (decrypt once,
#                encrypt + send per viewer; loadtest/src/ceiling.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
NS=ytcap$$
IP=10.99.0.1
OUT=bench/out
PNG=docs/img/bench-capacity.png
PASSWORD=bench-Admin-pw-2026
WIDTH=${CAP_WIDTH:-1920}; HEIGHT=${CAP_HEIGHT:-1080}; KBPS=${CAP_KBPS:-3000}
ROOMS=${CAP_ROOMS:-4}; STEP=${CAP_STEP:-40}; MAX=${CAP_MAX:-1000}; SECONDS_PER_STEP=${CAP_SECONDS:-10}
SERVERS=${CAP_SERVERS:-yunshi relay janus ceiling}

[ "$(id -u)" -eq 0 ] || { echo "bench-capacity: needs root (network namespace, taskset of servers)"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-capacity: needs 2 cores (server on one, load tool on the other)"; exit 1; }
mkdir -p "$OUT" docs/img
DATA=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# A veth pair gives the namespace a non-loopback address (this kernel has no dummy device).
ip netns exec "$NS" ip link add v0 type veth peer name v1
ip netns exec "$NS" ip addr add "$IP/24" dev v0
ip netns exec "$NS" ip link set v1 up
ip netns exec "$NS" ip link set v0 up
in_ns() { ip netns exec "$NS" "$@"; }

wait_http() {
  for _ in $(seq 1 100); do
    in_ns python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-capacity: $1 did not answer"; return 1
}

loadtest() {
  in_ns taskset -c 1 ./target/release/yunshi-loadtest --bind "$IP" --server-pid "$SERVER_PID" \
    --width "$WIDTH" --height "$HEIGHT" --kbps "$KBPS" --quiet "$@"
}

ramp_args=(ramp --rooms "$ROOMS" --step "$STEP" --max "$MAX" --step-seconds "$SECONDS_PER_STEP")
inputs=()
for server in $SERVERS; do
  case "$server" in
    yunshi)
      # Started with ip netns exec directly (not through a shell function) so that $! is the
      # server's own pid: its CPU time and memory are read from /proc.
      ip netns exec "$NS" env YUNSHI_ADMIN_PASSWORD="$PASSWORD" taskset -c 0 ./target/release/yunshi \
        --http "$IP:18080" --udp-port 41000 --public-ip "$IP" --media-bind "$IP" --workers 1 \
        --data "$DATA" --log warn > "$OUT/yunshi.log" 2>&1 &
      SERVER_PID=$!
      wait_http "http://$IP:18080/healthz"
      echo "== yunshi: ramp"
      loadtest --server "http://$IP:18080" --password "$PASSWORD" --json "$OUT/yunshi-ramp.json" "${ramp_args[@]}"
      echo "== yunshi: meeting, 5 rooms x 6 participants, 720p in 3 simulcast encodings"
      in_ns taskset -c 1 ./target/release/yunshi-loadtest --bind "$IP" --server-pid "$SERVER_PID" \
        --server "http://$IP:18080" --password "$PASSWORD" --width 1280 --height 720 --kbps 1500 --layers 3 \
        --quiet --duration 20 --json "$OUT/yunshi-meeting.json" meeting --rooms 5 --participants 6
      ;;
    relay)
      ip netns exec "$NS" taskset -c 0 ./target/release/yunshi-loadtest relay --http "$IP:18090" --media "$IP:41100" \
        > "$OUT/relay.log" 2>&1 &
      SERVER_PID=$!
      wait_http "http://$IP:18090/healthz"
      echo "== relay (raw limit): ramp"
      loadtest --kind relay --server "http://$IP:18090" --token relay --json "$OUT/relay-ramp.json" "${ramp_args[@]}"
      ;;
    janus)
      command -v janus >/dev/null || { echo "bench-capacity: janus is not installed (scripts/install-deps.sh bench)"; exit 1; }
      ip netns exec "$NS" taskset -c 0 janus -F "$REPO/bench/janus" -C "$REPO/bench/janus/janus.jcfg" \
        --interface "$IP" --ice-enforce-list "$IP" > "$OUT/janus.log" 2>&1 &
      SERVER_PID=$!
      wait_http "http://$IP:8088/janus/info"
      echo "== janus: ramp"
      loadtest --kind janus --server "http://$IP:8088/janus" --json "$OUT/janus-ramp.json" "${ramp_args[@]}"
      ;;
    ceiling)
      echo "== ceiling: 1 stream to 100 viewers, relaying thread on core 0"
      ./target/release/yunshi-loadtest --json "$OUT/ceiling.json" ceiling --viewers 100 --rate 4000 --seconds 10 \
        --relay-core 0 --tool-core 1
      continue
      ;;
    *) echo "bench-capacity: unknown server $server"; exit 1 ;;
  esac
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  inputs+=("$OUT/$server-ramp.json")
done

[ ${#inputs[@]} -gt 0 ] && ./target/release/yunshi-loadtest plot "${inputs[@]}" --png "$PNG" \
  --title "$(nproc)-core $(uname -m), server on 1 core: ${WIDTH}x${HEIGHT} ${KBPS} kbit/s to each viewer, $ROOMS rooms"
extra=()
[ -f "$OUT/ceiling.json" ] && [[ " $SERVERS " == *" ceiling "* ]] && extra+=("$OUT/ceiling.json")
[[ " $SERVERS " == *" yunshi "* ]] && extra+=("$OUT/yunshi-meeting.json")
python3 bench/summary.py --write docs/benchmarks.md \
  --command "make bench-capacity (CAP_SERVERS=\"$SERVERS\" CAP_STEP=$STEP CAP_MAX=$MAX CAP_ROOMS=$ROOMS CAP_SECONDS=$SECONDS_PER_STEP, ${WIDTH}x${HEIGHT} at $KBPS kbit/s)" \
  "${inputs[@]}" "${extra[@]}"
