// Benchmark: how long a newcomer waits to see the first remote video frame.
//
// Ten times: a fresh room, a first page joins and publishes, then a second page joins; on
// the second page we measure from sending `join` to the first rendered frame of the first
// page's video (window.yunshi.events). Prints p50/p90/max and one JSON line.
//
//   node bench-join.mjs            (YUNSHI_BIN selects the server binary; BENCH_RUNS=10)

import { createRoom, createUser, loginToken } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { startServer } from './lib/server.mjs';
import { joinViaDeepLink } from './lib/ui.mjs';

const RUNS = Number(process.env.BENCH_RUNS || 10);

// Nearest-rank percentile of sorted values.
const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
const round = (ms) => Math.round(ms * 10) / 10;

async function oneRun(browser, server, token, users) {
  const room = await createRoom(server.url, token);
  const first = await browser.newPage();
  const second = await browser.newPage();
  try {
    const firstId = await joinViaDeepLink(first, server.url, { ...users[0], roomId: room.id });
    // The first page must be publishing before the newcomer arrives.
    await first.waitForFunction(() => window.yunshi.pcPublish?.connectionState === 'connected', null,
      { timeout: 20_000 });
    await joinViaDeepLink(second, server.url, { ...users[1], roomId: room.id });
    await second.waitForFunction((id) => window.yunshi.events.some((e) => e.type === 'first_frame' && e.participant === id),
      firstId, { timeout: 20_000 });
    const events = await second.evaluate(() => window.yunshi.events);
    const join = events.find((e) => e.type === 'join' && e.dir === 'send');
    const frame = events.find((e) => e.type === 'first_frame' && e.participant === firstId);
    return frame.t - join.t;
  } finally {
    await first.close();
    await second.close();
  }
}

const server = await startServer();
const browser = await launchChromium();
let failed = false;
try {
  const token = await loginToken(server.url, 'admin', server.adminPassword);
  const users = [await createUser(server.url, token, 'first'), await createUser(server.url, token, 'second')];
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const ms = await oneRun(browser, server, token, users);
    samples.push(ms);
    console.log(`run ${i + 1}/${RUNS}: ${round(ms)} ms`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const result = {
    bench: 'join_to_first_frame',
    runs: RUNS,
    p50_ms: round(percentile(sorted, 50)),
    p90_ms: round(percentile(sorted, 90)),
    max_ms: round(sorted[sorted.length - 1]),
    samples_ms: samples.map(round),
  };
  console.log(`join -> first remote frame: p50 ${result.p50_ms} ms, p90 ${result.p90_ms} ms, max ${result.max_ms} ms`);
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
