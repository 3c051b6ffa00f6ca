// bench-loss: what a receiving Chromium experiences when the kernel drops packets.
//
//   cd tests/browser && node bench-loss/run.mjs          # as root; needs `ip` and `nft`
//
// Two Chromiums in a call (lib/losscall.mjs): `outside` in the root namespace, `inside` in a
// network namespace joined by a veth (198.18.N.0/24); the server listens on the root side.
// Both publish 640×360 in 2 simulcast layers (or BENCH_CODEC/BENCH_LAYERS) with a fake camera
// and microphone. After the call
// is up without loss, each point drops a random share of the UDP datagrams with nftables
// inside the namespace (lib/netns.mjs), measures for BENCH_SECONDS, removes the rule and waits
// for the video to flow again:
//   down — the namespace's input drops datagrams from the server's media ports; the
//          receiver is `inside`, the sender `outside`.
//   up   — the namespace's output drops datagrams to the server's media ports; `inside`
//          publishes through the loss, the receiver is `outside`.
// Per point, from the receiver's subscribe connection (getStats): freeze share (delta of
// totalFreezesDuration / seconds), decoded fps vs the sender's encoded fps, frame height,
// packetsLost share and retransmissions received; audio concealed share (concealedSamples /
// totalSamplesReceived deltas); the kernel's real drop share; the server's NACK/PLI counters.
//
// Table columns: kern% the kernel's real drop share; freeze% totalFreezesDuration share (only
// freezes that ended inside the window); stall% share of 1-s samples without a new frame; fps
// decoded vs sent (the sender's layer of the receiver's median height); vlost%/alost%
// Chromium's packetsLost share for video/audio (not the loss left after repair: a packet
// repaired by retransmission still counts as lost there; freeze% and fps% show the repair);
// rtx retransmitted video packets received; fec ULPFEC packets the server sent (Chromium
// reports no ULPFEC counters for video); conceal% audio concealed
// samples; nack→srv NACKs the server got from subscribers, nack→pub NACKs it sent to
// publishers (/metrics); pli→srv PLI/FIR sent by the receiving Chromium; recover: time
// until video flows again after the rule is removed; states: the receiver's connectionState.
//
// Output: a table on stdout, one JSON line per point (prefixed `BENCH_LOSS `), a JSON file
// and a PNG plot.
//
// | variable | default | meaning |
// | YUNSHI_BIN | ../../target/debug/yunshi | server binary |
// | BENCH_SECONDS | 60 | measuring time of each point |
// | BENCH_WARMUP_SECONDS | 10 | call without loss before the first point (bandwidth ramp-up) |
// | BENCH_SETTLE_SECONDS | 5 | pause after the video recovered, before the next point |
// | BENCH_DIRECTIONS | down,up | which sweeps |
// | BENCH_VIDEO_LOSSES | 0,10,20,30,40 | loss % of the video sweep |
// | BENCH_AUDIO_LOSSES | 0,20,50,70,80 | loss % of the audio sweep (both sweeps share the call: |
// |   |   | each direction runs the union of the two lists, ascending, and measures both kinds) |
// | BENCH_LOSS_OUT | bench-loss/results.json | JSON results |
// | BENCH_LOSS_PNG | bench-loss/loss.png | plot ('' for none) |
// | BENCH_RTT_MS | 0 | added round trip (lib/delayrelay.mjs, half each way, both pages) |
// | BENCH_VIDEO_FEC | (server default: auto) | the server's video_fec: off, auto, always |
// | BENCH_ALLOCATE | (server default) | the server's allocate_bandwidth: true or false |
// | BENCH_CODEC | vp8 | what the pages send: vp8 or h264 (simulcast), vp9 or av1 (SVC, L{layers}T3_KEY) |
// | BENCH_LAYERS | 2 | simulcast streams or spatial layers (640×360: at most 2 simulcast, 3 SVC) |
// | BENCH_LOSS_LOG | (none) | write the server's log there (last 4 MB; with RUST_LOG=sfu::worker=debug: allocations, redundancy) |

import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { receiverSnapshot, senderSnapshot, serverCounters, startLossCall } from '../lib/losscall.mjs';
import { lossNamespaceUnavailable } from '../lib/netns.mjs';
import { YUNSHI_BIN } from '../lib/server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CAPTURE = { width: 640, height: 360, layers: Number(process.env.BENCH_LAYERS || 2), codec: process.env.BENCH_CODEC || 'vp8' };
const SECONDS = Number(process.env.BENCH_SECONDS || 60);
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE_SECONDS ?? 5);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 10);
const DIRECTIONS = (process.env.BENCH_DIRECTIONS || 'down,up').split(',').map((s) => s.trim()).filter(Boolean);
const list = (text, dflt) => (text || dflt).split(',').map(Number).filter((n) => Number.isFinite(n));
const VIDEO_LOSSES = list(process.env.BENCH_VIDEO_LOSSES, '0,10,20,30,40');
const AUDIO_LOSSES = list(process.env.BENCH_AUDIO_LOSSES, '0,20,50,70,80');
const OUT = process.env.BENCH_LOSS_OUT || path.join(HERE, 'results.json');
const PNG = process.env.BENCH_LOSS_PNG ?? path.join(HERE, 'loss.png');
const RTT_MS = Number(process.env.BENCH_RTT_MS || 0);
const SERVER_ENV = {
  ...(process.env.BENCH_VIDEO_FEC ? { YUNSHI_VIDEO_FEC: process.env.BENCH_VIDEO_FEC } : {}),
  ...(process.env.BENCH_ALLOCATE ? { YUNSHI_ALLOCATE_BANDWIDTH: process.env.BENCH_ALLOCATE } : {}),
};
const SAMPLE_MS = 1000;
const RECOVER_TIMEOUT_MS = 30_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, digits = 3) => (x === null || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : null;
};

for (const d of DIRECTIONS) if (d !== 'down' && d !== 'up') throw new Error(`BENCH_DIRECTIONS: unknown direction ${d}`);
const unavailable = lossNamespaceUnavailable();
if (unavailable) {
  console.error(`bench-loss: ${unavailable}`);
  process.exit(2);
}

// Measures one point: loss already applied; returns the metrics.
async function measure(call, direction, loss) {
  const receiver = direction === 'down' ? call.inside : call.outside;
  const sender = direction === 'down' ? call.outside : call.inside;
  const r0 = await receiverSnapshot(receiver);
  const s0 = await senderSnapshot(sender);
  const m0 = await serverCounters(call.server, call.token);
  const samples = [];
  const states = new Set([r0.state]);
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    await sleep(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
    const s = await receiverSnapshot(receiver);
    samples.push(s);
    states.add(s.state);
  }
  const r1 = samples.at(-1) ?? (await receiverSnapshot(receiver));
  const s1 = await senderSnapshot(sender);
  const m1 = await serverCounters(call.server, call.token);
  const kernel = call.ns.lossCounters()[direction];

  const dur = (r1.t - r0.t) / 1000;
  const dv = (k) => (r1.video[k] ?? 0) - (r0.video[k] ?? 0);
  const da = (k) => (r1.audio[k] ?? 0) - (r0.audio[k] ?? 0);
  const sdur = (s1.t - s0.t) / 1000;
  const sentFpsByRid = {};
  for (const l of s1.layers) {
    const before = s0.layers.find((o) => o.rid === l.rid);
    if (before) sentFpsByRid[l.rid ?? '-'] = round((l.framesEncoded - before.framesEncoded) / sdur, 1);
  }
  const heights = samples.map((s) => s.video.frameHeight).filter((h) => h > 0);
  const medianHeight = median(heights);
  // The layer the receiver mostly got (by height), else the fastest one.
  const matching = s1.layers.find((l) => l.frameHeight === medianHeight);
  const sentFps = matching ? sentFpsByRid[matching.rid ?? '-'] : Math.max(0, ...Object.values(sentFpsByRid));
  const fps = dv('framesDecoded') / dur;
  const videoPackets = dv('packetsReceived') + dv('packetsLost');
  const audioPackets = da('packetsReceived') + da('packetsLost');
  const audioSamples = da('totalSamplesReceived');
  return {
    direction,
    loss,
    sweeps: [...(VIDEO_LOSSES.includes(loss) ? ['video'] : []), ...(AUDIO_LOSSES.includes(loss) ? ['audio'] : [])],
    seconds: round(dur, 1),
    kernel_drop_share: kernel.seen ? round(kernel.dropped / kernel.seen) : null,
    kernel_datagrams: kernel.seen,
    video: {
      // totalFreezesDuration only grows when a freeze ends: a freeze still going on at the end
      // of the window is missing, so at heavy loss stall_share is the better measure.
      freeze_share: round(dv('totalFreezesDuration') / dur),
      stall_share: round(samples.filter((s, i) => (s.video.framesDecoded ?? 0) <= ((i ? samples[i - 1] : r0).video.framesDecoded ?? 0)).length
        / Math.max(1, samples.length)),
      freezes: dv('freezeCount'),
      // When freezes ended: [second into the window, ms frozen] per 1-s sample that saw one.
      freeze_timeline: samples.flatMap((s, i) => {
        const before = (i ? samples[i - 1] : r0).video;
        const ms = Math.round(((s.video.totalFreezesDuration ?? 0) - (before.totalFreezesDuration ?? 0)) * 1000);
        return ms > 0 ? [[round((s.t - r0.t) / 1000, 1), ms]] : [];
      }),
      // Mean time a frame waited in the jitter buffer over the window.
      jitter_buffer_ms: dv('jitterBufferEmittedCount') > 0 ? round(dv('jitterBufferDelay') / dv('jitterBufferEmittedCount') * 1000, 0) : null,
      pause_share: round(dv('totalPausesDuration') / dur),
      fps: round(fps, 1),
      fps_samples_mean: round(samples.reduce((a, s) => a + (s.video.framesPerSecond || 0), 0) / Math.max(1, samples.length), 1),
      sent_fps: sentFps,
      sent_fps_by_rid: sentFpsByRid,
      fps_ratio: sentFps ? round(fps / sentFps) : null,
      frame_height_median: medianHeight,
      frame_height_min: heights.length ? Math.min(...heights) : null,
      frame_height_last: r1.video.frameHeight ?? null,
      packets_lost_share: videoPackets > 0 ? round(dv('packetsLost') / videoPackets) : null,
      retransmitted_received: dv('retransmittedPacketsReceived'),
      frames_dropped: dv('framesDropped'),
      nacks_sent: dv('nackCount'),
      plis_sent: dv('pliCount') + dv('firCount'),
      key_frames: dv('keyFramesDecoded'),
    },
    audio: {
      concealed_share: audioSamples > 0 ? round(da('concealedSamples') / audioSamples) : null,
      silent_concealed_share: audioSamples > 0 ? round(da('silentConcealedSamples') / audioSamples) : null,
      concealment_events: da('concealmentEvents'),
      samples_received: audioSamples,
      packets_lost_share: audioPackets > 0 ? round(da('packetsLost') / audioPackets) : null,
    },
    sender_limited_by: [...new Set(s1.layers.map((l) => l.qualityLimitationReason))],
    sender_retransmitted: s1.layers.reduce((a, l) => a + l.retransmittedPacketsSent, 0)
      - s0.layers.reduce((a, l) => a + l.retransmittedPacketsSent, 0),
    server: m0 && m1 ? Object.fromEntries(Object.keys(m1).map((k) => [k, m1[k] - m0[k]])) : null,
    receiver_states: [...states],
  };
}

// After the rule is gone: ms until the receiver decodes frames again (≥ 5 more frames).
async function recover(call, direction) {
  const receiver = direction === 'down' ? call.inside : call.outside;
  const start = Date.now();
  const first = await receiverSnapshot(receiver);
  while (Date.now() - start < RECOVER_TIMEOUT_MS) {
    await sleep(250);
    const s = await receiverSnapshot(receiver);
    if ((s.video.framesDecoded ?? 0) - (first.video.framesDecoded ?? 0) >= 5) return Date.now() - start;
  }
  return null;
}

function printTable(points) {
  const head = ['dir', 'loss%', 'kern%', 'freeze%', 'stall%', 'fps', 'sent', 'fps%', 'height', 'vlost%', 'rtx', 'fec', 'conceal%', 'alost%', 'nack→srv', 'nack→pub', 'pli→srv', 'recover', 'states'];
  const rows = points.map((p) => [p.direction, p.loss, pct(p.kernel_drop_share), pct(p.video.freeze_share), pct(p.video.stall_share), p.video.fps,
    p.video.sent_fps, pct(p.video.fps_ratio), p.video.frame_height_median, pct(p.video.packets_lost_share), p.video.retransmitted_received, p.server?.fec_out,
    pct(p.audio.concealed_share), pct(p.audio.packets_lost_share), p.server?.nacks_rx, p.server?.nacks_tx, p.video.plis_sent,
    p.recover_ms === null ? 'none' : `${p.recover_ms}ms`, p.receiver_states.join('/')]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '-').length)));
  const line = (r) => r.map((c, i) => String(c ?? '-').padStart(widths[i])).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}
function pct(x) {
  return x === null || x === undefined ? null : (x * 100).toFixed(1);
}

// A line chart as SVG, rendered by the benchmark's own Chromium and saved as PNG.
async function plot(browser, points, file) {
  const W = 900, H = 520, L = 60, R = 220, T = 40, B = 50;
  const x = (loss) => L + (loss / 80) * (W - L - R);
  const y = (share) => T + (1 - share) * (H - T - B);
  const series = [
    { name: 'video freeze share', color: '#d62728', get: (p) => p.video.freeze_share },
    { name: 'video stall share', color: '#ff7f0e', get: (p) => p.video.stall_share },
    { name: 'video fps / sent fps', color: '#1f77b4', get: (p) => p.video.fps_ratio },
    { name: 'audio concealed share', color: '#2ca02c', get: (p) => p.audio.concealed_share },
    { name: 'kernel drop share', color: '#999', get: (p) => p.kernel_drop_share },
  ];
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`;
  svg += `<rect width="${W}" height="${H}" fill="white"/>`;
  svg += `<text x="${L}" y="24" font-size="15">yunshi bench-loss: receiver under random kernel packet loss (${SECONDS} s per point)</text>`;
  for (let s = 0; s <= 1.0001; s += 0.2) {
    svg += `<line x1="${L}" x2="${W - R}" y1="${y(s)}" y2="${y(s)}" stroke="#eee"/><text x="${L - 8}" y="${y(s) + 4}" text-anchor="end">${Math.round(s * 100)}%</text>`;
  }
  for (let l = 0; l <= 80; l += 10) {
    svg += `<line x1="${x(l)}" x2="${x(l)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${x(l)}" y="${H - B + 18}" text-anchor="middle">${l}</text>`;
  }
  svg += `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">configured loss %</text>`;
  svg += `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`;
  let ly = T + 10;
  for (const dir of DIRECTIONS) {
    const pts = points.filter((p) => p.direction === dir).sort((a, b) => a.loss - b.loss);
    const dash = dir === 'up' ? ' stroke-dasharray="6 4"' : '';
    for (const s of series) {
      const xy = pts.filter((p) => Number.isFinite(s.get(p))).map((p) => [x(p.loss), y(Math.min(1, s.get(p)))]);
      if (!xy.length) continue;
      svg += `<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${xy.map((c) => c.join(',')).join(' ')}"/>`;
      for (const [cx, cy] of xy) svg += `<circle cx="${cx}" cy="${cy}" r="3" fill="${s.color}"/>`;
      svg += `<line x1="${W - R + 10}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`;
      svg += `<text x="${W - R + 46}" y="${ly + 4}">${s.name} (${dir})</text>`;
      ly += 18;
    }
  }
  svg += '</svg>';
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: W, height: H });
  await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
  await page.locator('svg').screenshot({ path: file });
  await page.close();
}

const started = new Date().toISOString();
const call = await startLossCall({ capture: CAPTURE, serverEnv: SERVER_ENV, rttMs: RTT_MS });
const points = [];
let failure = null;
try {
  console.error(`bench-loss: server ${call.server.url} (media UDP ${call.server.udpPorts.join('-')}), namespace ${call.ns.name} ` +
    `(${call.ns.nsIp}), ${SECONDS} s per point, directions ${DIRECTIONS.join(',')}, added RTT ${RTT_MS} ms, ` +
    `video_fec ${SERVER_ENV.YUNSHI_VIDEO_FEC ?? 'default'}`);
  await sleep(WARMUP_SECONDS * 1000);
  const losses = [...new Set([...VIDEO_LOSSES, ...AUDIO_LOSSES])].sort((a, b) => a - b);
  for (const direction of DIRECTIONS) {
    for (const loss of losses) {
      call.ns.setLoss({ ports: call.server.udpPorts, [direction]: loss });
      const point = await measure(call, direction, loss);
      call.ns.clearLoss();
      point.recover_ms = await recover(call, direction);
      points.push(point);
      console.log(`BENCH_LOSS ${JSON.stringify(point)}`);
      if (point.recover_ms === null) console.error(`bench-loss: the ${direction} video did not recover within ${RECOVER_TIMEOUT_MS / 1000} s after ${loss} % loss`);
      await sleep(SETTLE_SECONDS * 1000);
    }
  }
} catch (err) {
  failure = err;
  process.stderr.write(`\n--- yunshi output ---\n${call.server.logs().slice(-20000)}\n--- end ---\n`);
} finally {
  try {
    if (points.length) {
      console.log('');
      printTable(points);
      await writeFile(OUT, JSON.stringify({ started, seconds: SECONDS, capture: CAPTURE, binary: YUNSHI_BIN, points }, null, 2) + '\n');
      console.error(`bench-loss: wrote ${OUT}`);
      if (PNG) {
        await plot(call.browsers[0], points, PNG).then(() => console.error(`bench-loss: wrote ${PNG}`),
          (err) => console.error(`bench-loss: no plot: ${err.message}`));
      }
    }
    if (process.env.BENCH_LOSS_LOG) await writeFile(process.env.BENCH_LOSS_LOG, call.server.logs());
  } finally {
    await call.close();
  }
}
if (failure) {
  console.error(failure);
  process.exit(1);
}
