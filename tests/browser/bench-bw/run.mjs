// Bandwidth sweep (issue 3): which layer arrives under a downlink cap, and how fast the server
// settles after a step. Same two-page call as bench-loss (lib/losscall.mjs); the cap is a tc
// token bucket on the root end of the namespace's veth (lib/netns.mjs setRate), so it limits
// what the server sends to the page inside the namespace. The publisher (outside) sends three
// simulcast layers (1280×720, 640×360, 320×180).
//
// Phases: steady caps (BENCH_BW_CAPS kbps, BENCH_BW_SECONDS each), then a step
// 3000 → 500 → 3000 kbps (BENCH_BW_STEP_SECONDS each). Every second the receiving page's
// video is sampled: frame height, decoded fps, received kbps, frozen time.
//
// Per steady cap: median height, fps, kbps, freeze share, and layer switches in the second
// half (oscillation). Per step: settle time = seconds until the received height reaches the
// value it then keeps to the end of the step, with frames flowing.
//
// | variable | default | meaning |
// | YUNSHI_BIN | ../../target/debug/yunshi | server binary |
// | BENCH_BW_CAPS | 3000,1000,300 | steady caps, kbps |
// | BENCH_BW_SECONDS | 30 | seconds per steady cap |
// | BENCH_BW_STEP_SECONDS | 20 | seconds per step phase |
// | BENCH_BW_ALLOCATE | true | the server's allocate_bandwidth |
// | BENCH_BW_OUT | bench-bw/results.json | JSON results |
// | BENCH_BW_LOG | (none) | write the server's log there (with RUST_LOG=sfu::worker=debug: estimates, allocations) |
//
// Output: a table on stdout and the JSON file. Needs root (namespace, tc).

import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { receiverSnapshot, startLossCall } from '../lib/losscall.mjs';
import { lossNamespaceUnavailable } from '../lib/netns.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CAPS = (process.env.BENCH_BW_CAPS || '3000,1000,300').split(',').map(Number).filter((n) => n > 0);
const SECONDS = Number(process.env.BENCH_BW_SECONDS || 30);
const STEP_SECONDS = Number(process.env.BENCH_BW_STEP_SECONDS || 20);
const ALLOCATE = (process.env.BENCH_BW_ALLOCATE ?? 'true') !== 'false';
const OUT = process.env.BENCH_BW_OUT || path.join(HERE, 'results.json');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const reason = lossNamespaceUnavailable();
if (reason) {
  console.error(`bench-bw: cannot run: ${reason}`);
  process.exit(2);
}

// One sample per second: the decoding video's height, fps, kbps and frozen seconds since the last.
async function sampler(page) {
  let prev = await receiverSnapshot(page);
  return async () => {
    await sleep(1000);
    const s = await receiverSnapshot(page);
    const dt = (s.t - prev.t) / 1000;
    const v = s.video;
    const p = prev.video;
    const sample = {
      height: v.frameHeight ?? 0,
      fps: ((v.framesDecoded ?? 0) - (p.framesDecoded ?? 0)) / dt,
      kbps: (8 * ((v.bytesReceived ?? 0) - (p.bytesReceived ?? 0))) / dt / 1000,
      frozen: (v.totalFreezesDuration ?? 0) - (p.totalFreezesDuration ?? 0),
    };
    prev = s;
    return sample;
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
};
const round = (x, d = 1) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);

function steadySummary(capKbps, samples) {
  const half = samples.slice(Math.floor(samples.length / 2));
  let switches = 0;
  for (let i = 1; i < half.length; i++) if (half[i].height !== half[i - 1].height) switches++;
  return {
    cap_kbps: capKbps,
    height_median: median(samples.map((s) => s.height)),
    fps_median: round(median(samples.map((s) => s.fps))),
    kbps_median: round(median(samples.map((s) => s.kbps)), 0),
    freeze_share: round(samples.reduce((a, s) => a + s.frozen, 0) / samples.length, 3),
    switches_second_half: switches,
    heights: samples.map((s) => s.height),
  };
}

// Seconds from the step until the height reaches the value it keeps to the end, with frames.
function settleSeconds(samples) {
  const final = samples[samples.length - 1]?.height;
  let settled = samples.length;
  for (let i = samples.length - 1; i >= 0; i--) {
    if (samples[i].height !== final || samples[i].fps < 1) break;
    settled = i;
  }
  return settled >= samples.length ? null : settled + 1;
}

const call = await startLossCall({
  capture: { width: 1280, height: 720, layers: 3 },
  serverEnv: { YUNSHI_ALLOCATE_BANDWIDTH: String(ALLOCATE) },
});
// A large window: the receiving tile asks for 720p, so the caps, not the tile, decide.
await call.inside.setViewportSize({ width: 1920, height: 1080 });
const results = { date: new Date().toISOString(), allocate_bandwidth: ALLOCATE, steady: [], step: [] };
try {
  console.error(`bench-bw: allocate_bandwidth=${ALLOCATE}, caps ${CAPS.join(',')} kbps × ${SECONDS} s, step 3000→500→3000 × ${STEP_SECONDS} s`);
  await sleep(10_000);
  const next = await sampler(call.inside);
  for (const cap of CAPS) {
    call.ns.setRate({ downKbps: cap });
    console.error(`${new Date().toISOString()} cap ${cap} kbps`);
    const samples = [];
    for (let i = 0; i < SECONDS; i++) samples.push(await next());
    results.steady.push(steadySummary(cap, samples));
  }
  for (const cap of [3000, 500, 3000]) {
    call.ns.setRate({ downKbps: cap });
    console.error(`${new Date().toISOString()} step to ${cap} kbps`);
    const samples = [];
    for (let i = 0; i < STEP_SECONDS; i++) samples.push(await next());
    results.step.push({ cap_kbps: cap, settle_s: settleSeconds(samples), final_height: samples.at(-1).height,
      freeze_s: round(samples.reduce((a, s) => a + s.frozen, 0), 2), heights: samples.map((s) => s.height) });
  }
  call.ns.setRate({});
} finally {
  if (process.env.BENCH_BW_LOG) await writeFile(process.env.BENCH_BW_LOG, call.server.logs());
  await call.close();
}

console.log('cap kbps  height  fps  kbps  freeze%  switches(2nd half)');
for (const s of results.steady) {
  console.log(`${String(s.cap_kbps).padStart(8)}  ${String(s.height_median).padStart(6)}  ${String(s.fps_median).padStart(4)}  ` +
    `${String(s.kbps_median).padStart(4)}  ${String(round(100 * s.freeze_share)).padStart(7)}  ${s.switches_second_half}`);
}
console.log('step to kbps  settle s  final height  frozen s');
for (const s of results.step) {
  console.log(`${String(s.cap_kbps).padStart(12)}  ${String(s.settle_s ?? 'never').padStart(8)}  ${String(s.final_height).padStart(12)}  ${s.freeze_s}`);
}
await writeFile(OUT, JSON.stringify(results, null, 2));
console.error(`bench-bw: wrote ${OUT}`);
