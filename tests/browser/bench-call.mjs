// Benchmark: the server's CPU and memory during a call of N participants.
//
// N pages (fake camera and microphone) join one room; once every page decodes video from
// all the others, we measure the server's CPU time (utime + stime from /proc/<pid>/stat)
// over 30 s of steady state and its VmRSS at the end. Prints one JSON line.
//
//   node bench-call.mjs <N>        (default 4; BENCH_SECONDS=30; YUNSHI_BIN as for tests)

import { createRoom, createUser, loginToken } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { cpuSeconds, rssMiB } from './lib/proc.mjs';
import { startServer } from './lib/server.mjs';
import { inboundStats, pollUntil } from './lib/stats.mjs';
import { joinViaDeepLink } from './lib/ui.mjs';

const N = Number(process.argv[2] || 4);
const SECONDS = Number(process.env.BENCH_SECONDS || 30);
if (!Number.isInteger(N) || N < 2) {
  console.error('usage: node bench-call.mjs <participants ≥ 2>');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

// Total frames decoded by each page, from all the others.
async function framesPerPage(pages) {
  return Promise.all(pages.map(async (page) => (await inboundStats(page, 'yunshi.pcSubscribe')).framesDecoded));
}

const server = await startServer();
const browser = await launchChromium();
let failed = false;
try {
  const token = await loginToken(server.url, 'admin', server.adminPassword);
  const room = await createRoom(server.url, token);
  const pages = [];
  for (let i = 0; i < N; i++) {
    const user = await createUser(server.url, token, `participant${i + 1}`);
    const page = await browser.newPage();
    await joinViaDeepLink(page, server.url, { ...user, roomId: room.id });
    pages.push(page);
  }
  // Steady state: every page decodes every other participant's video.
  for (const page of pages) {
    await pollUntil(() => inboundStats(page, 'yunshi.pcSubscribe'),
      (s) => s.video.filter((v) => v.framesDecoded > 0).length >= N - 1,
      { timeoutMs: 60_000, intervalMs: 500, what: `video from ${N - 1} participants` });
  }
  await sleep(2000);

  const frames0 = await framesPerPage(pages);
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const cpu1 = cpuSeconds(server.pid);
  const elapsed = (performance.now() - t0) / 1000;
  const rss = rssMiB(server.pid);
  const frames1 = await framesPerPage(pages);

  const streams = N * (N - 1);
  const totalFrames = frames1.reduce((sum, f, i) => sum + f - frames0[i], 0);
  const result = {
    bench: 'call',
    participants: N,
    seconds: round(elapsed),
    cpu_percent_one_core: round(((cpu1 - cpu0) / elapsed) * 100),
    rss_mb: round(rss),
    received_fps_per_stream: round(totalFrames / elapsed / streams),
  };
  console.log(`${N} participants, ${result.seconds} s: server CPU ${result.cpu_percent_one_core} % of one core, ` +
    `RSS ${result.rss_mb} MB, ${result.received_fps_per_stream} fps per received video`);
  console.log(JSON.stringify(result));
} catch (err) {
  failed = true;
  console.error(err);
  console.error(`--- yunshi output ---\n${server.logs()}`);
} finally {
  await browser.close();
  await server.stop();
}
process.exit(failed ? 1 : 0);
