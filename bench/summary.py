#!/usr/bin/env python3
"""Summarise `yunshi-loadtest ramp --json` results (bench/capacity.sh) as a markdown table.

Per server: the largest step within the limits (loss < limit, p99 video delay <= limit, no
failures), the packets/s it delivered there and the share of the server's core it took; the
CPU time per delivered packet (median over steps) and what a full core would carry at that
cost; memory per viewer stream (RSS slope across steps); join time at the capacity step.
A 1080p stream at 3 Mbit/s is ~310 packets/s (the issue's yardstick).

With `--write DOC --command CMD`, the same summary, headed by the command, the date, the commit
and the machine, replaces the block between the bench-capacity markers in DOC
(docs/benchmarks.md): the latest run of `make bench-capacity` is always in the document, next
to the hand-written analysis of earlier runs."""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

BEGIN = "<!-- bench-capacity: begin (written by make bench-capacity; edits here are overwritten) -->"
END = "<!-- bench-capacity: end -->"

args = sys.argv[1:]
write_to = command = None
while args and args[0].startswith("--"):
    flag, value, args = args[0], args[1], args[2:]
    if flag == "--write":
        write_to = value
    elif flag == "--command":
        command = value
    else:
        sys.exit(f"summary.py: unknown flag {flag}")
out = []


def emit(line=""):
    print(line)
    out.append(line)


PKTS_1080P = 310

rows = []
ceiling = None
meeting = None
for path in args:
    r = json.load(open(path))
    if r.get("scenario") == "ceiling":
        ceiling = r
        continue
    if r.get("scenario") == "meeting":
        meeting = r
        continue
    kind = r["params"].get("kind", "server")
    res = r["result"]
    steps = res["steps"]
    cap = res.get("capacity_viewers")
    at = next((s for s in steps if s["viewers"] == cap), None)
    us = [s["totals"]["server"]["us_per_packet"] for s in steps if s["totals"]["server"]["us_per_packet"]]
    us_med = statistics.median(us) if us else None
    rss = [(s["viewers"], s["totals"]["server"]["rss_bytes"]) for s in steps if s["totals"]["server"]["rss_bytes"]]
    per_viewer = (rss[-1][1] - rss[0][1]) / (rss[-1][0] - rss[0][0]) if len(rss) >= 2 and rss[-1][0] > rss[0][0] else None
    t = at["totals"] if at else None
    # The join: a publisher's WHIP POST -> first keyframe at viewers waiting for it,
    # at the step nearest 80 % of capacity.
    near80 = min(steps, key=lambda s: abs(s["viewers"] - 0.8 * cap)) if cap else None
    pj = sorted(near80.get("publisher_join_ms", [])) if near80 else []
    pub_join = (near80["viewers"], pj[min(len(pj) - 1, int(0.99 * len(pj)))]) if pj else None
    lat = lambda t: t["latency_ms"]["video"]["p99"] if t["latency_ms"]["video"]["p99"] is not None else t["latency_ms"]["video_over_fastest"]["p99"]
    rows.append({
        "kind": kind,
        "cap": cap,
        "pps": t["packets"]["per_s"] if t else None,
        "core": t["server"]["core_share"] * 100 if t else None,
        "p99": lat(t) if t else None,
        "join": t["join_ms"]["p99"] if t else None,
        "us": us_med,
        "full_core_pps": 1e6 / us_med if us_med else None,
        "kb_per_viewer": per_viewer / 1024 if per_viewer else None,
        "stopped": res["stopped"],
        "pub_join": pub_join,
        "video_per_viewer": (t["packets"]["video"] / t["seconds"] / max(t["video_streams"], 1)) if t else None,
    })

f = lambda x, fmt: "-" if x is None else fmt.format(x)
emit("| server | viewers within limits | packets/s delivered | server core | p99 video delay | viewer join p99 | publisher join p99 (at ~80 %) | CPU per packet | a full core at that cost | = 1080p streams/core | memory per viewer | stopped |")
emit("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    emit("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        r["kind"], f(r["cap"], "{}"), f(r["pps"], "{:.0f}"), f(r["core"], "{:.0f} %"), f(r["p99"], "{:.1f} ms"),
        f(r["join"], "{:.0f} ms"),
        "-" if not r["pub_join"] else "{:.0f} ms ({} viewers)".format(r["pub_join"][1], r["pub_join"][0]),
        f(r["us"], "{:.2f} µs"), f(r["full_core_pps"], "{:.0f} pkt/s"),
        f(r["full_core_pps"] and r["full_core_pps"] / PKTS_1080P, "{:.0f}"), f(r["kb_per_viewer"], "{:.0f} KB"), r["stopped"]))
by = {r["kind"]: r for r in rows}
if "yunshi" in by and "relay" in by:
    y, r = by["yunshi"], by["relay"]
    if y["us"] and r["us"]:
        emit(f"\nyunshi as a share of the raw limit (CPU per packet, relay/yunshi): {r['us'] / y['us'] * 100:.0f} %")
    if y["cap"] and r["cap"]:
        emit(f"yunshi as a share of the raw limit (viewers within limits): {y['cap'] / r['cap'] * 100:.0f} %")
if ceiling:
    emit(f"\nceiling (no WebRTC stack; {ceiling['viewers']} viewers): {ceiling['us_per_packet']:.2f} µs per packet out = {ceiling['full_core_pps']:.0f} packets/s per core")
    for kind in ("yunshi", "relay", "janus"):
        if kind in by and by[kind]["us"]:
            emit(f"{kind} as a share of the ceiling (CPU per packet): {ceiling['us_per_packet'] / by[kind]['us'] * 100:.0f} %")
if "yunshi" in by and "janus" in by:
    y, j = by["yunshi"], by["janus"]
    if y["cap"] and j["cap"]:
        emit(f"\nyunshi/Janus viewers within limits: {y['cap'] / j['cap']:.2f}x")
    if y["us"] and j["us"]:
        emit(f"yunshi/Janus packets per core (CPU cost per packet): {j['us'] / y['us']:.2f}x")
if meeting:
    m = meeting["result"]
    emit(f"\nmeeting ({meeting['rooms']} rooms x {meeting['participants']} participants): "
         f"{m['packets']['per_s']:.0f} packets/s to subscribers, loss {m['lost']['pct']:.3f} %, "
         f"video p99 {m['latency_ms']['video']['p99']} ms, server {m['server']['us_per_packet']:.2f} µs per packet")

if write_to:
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem_gb = next((int(l.split()[1]) / 1024 / 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    head = [
        BEGIN,
        "",
        f"**Latest run of `make bench-capacity`** (written by the command itself): "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit "
        f"`{sh('git', 'rev-parse', '--short', 'HEAD')}`{' (with uncommitted changes)' if sh('git', 'status', '--porcelain', '--untracked-files=no', '--', '.', ':!docs', ':!bench') else ''}, "
        f"machine: {os.cpu_count()} × {cpu}, {mem_gb:.0f} GB, Linux {platform.release()}. Command: `{command or 'bench/capacity.sh'}`. "
        "Plot: `docs/img/bench-capacity.png` (above).",
        "",
    ]
    block = "\n".join(head + out + ["", END])
    doc = open(write_to).read()
    if BEGIN in doc and END in doc:
        before, rest = doc.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        doc = before + block + after
    else:
        anchor = "![capacity](img/bench-capacity.png)\n"
        if anchor not in doc:
            sys.exit(f"summary.py: no bench-capacity markers and no plot line in {write_to}")
        doc = doc.replace(anchor, anchor + "\n" + block + "\n", 1)
    open(write_to, "w").write(doc)
    print(f"\nwrote the summary into {write_to}")
