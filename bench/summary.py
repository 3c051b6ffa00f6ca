#!/usr/bin/env python3
"""Summarise `yunshi-loadtest ramp --json` results (bench/capacity.sh) as a markdown table.

Per server: the largest step within the limits (loss < limit, p99 video delay <= limit, no
failures), the packets/s it delivered there and the share of the server's core it took; the
CPU time per delivered packet (median over steps) and what a full core would carry at that
cost; memory per viewer stream (RSS slope across steps); join time at the capacity step.
A 1080p stream at 3 Mbit/s is ~310 packets/s (the issue's yardstick)."""
import json
import statistics
import sys

PKTS_1080P = 310

rows = []
ceiling = None
for path in sys.argv[1:]:
    r = json.load(open(path))
    if r.get("scenario") == "ceiling":
        ceiling = r
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
print("| server | viewers within limits | packets/s delivered | server core | p99 video delay | viewer join p99 | publisher join p99 (at ~80 %) | CPU per packet | a full core at that cost | = 1080p streams/core | memory per viewer | stopped |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        r["kind"], f(r["cap"], "{}"), f(r["pps"], "{:.0f}"), f(r["core"], "{:.0f} %"), f(r["p99"], "{:.1f} ms"),
        f(r["join"], "{:.0f} ms"),
        "-" if not r["pub_join"] else "{:.0f} ms ({} viewers)".format(r["pub_join"][1], r["pub_join"][0]),
        f(r["us"], "{:.2f} µs"), f(r["full_core_pps"], "{:.0f} pkt/s"),
        f(r["full_core_pps"] and r["full_core_pps"] / PKTS_1080P, "{:.0f}"), f(r["kb_per_viewer"], "{:.0f} KB"), r["stopped"]))
by = {r["kind"]: r for r in rows}
if "yunshi" in by and "relay" in by:
    y, r = by["yunshi"], by["relay"]
    if y["us"] and r["us"]:
        print(f"\nyunshi as a share of the raw limit (CPU per packet, relay/yunshi): {r['us'] / y['us'] * 100:.0f} %")
    if y["cap"] and r["cap"]:
        print(f"yunshi as a share of the raw limit (viewers within limits): {y['cap'] / r['cap'] * 100:.0f} %")
if ceiling:
    print(f"\nceiling (no WebRTC stack; {ceiling['viewers']} viewers): {ceiling['us_per_packet']:.2f} µs per packet out = {ceiling['full_core_pps']:.0f} packets/s per core")
    for kind in ("yunshi", "relay", "janus"):
        if kind in by and by[kind]["us"]:
            print(f"{kind} as a share of the ceiling (CPU per packet): {ceiling['us_per_packet'] / by[kind]['us'] * 100:.0f} %")
if "yunshi" in by and "janus" in by:
    y, j = by["yunshi"], by["janus"]
    if y["cap"] and j["cap"]:
        print(f"\nyunshi/Janus viewers within limits: {y['cap'] / j['cap']:.2f}x")
    if y["us"] and j["us"]:
        print(f"yunshi/Janus packets per core (CPU cost per packet): {j['us'] / y['us']:.2f}x")
