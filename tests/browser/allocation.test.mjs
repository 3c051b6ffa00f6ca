// Bandwidth allocation under a real bandwidth cap: the receiver's Chromium runs in a network
// namespace whose downlink is capped by a token bucket (tc tbf, lib/netns.mjs setRate). With
// `allocate_bandwidth` on, the server must move the receiver to a layer that fits the cap and
// keep video decoding, and give it 720p back once the cap is lifted.
//
// Correctness, not speed: the waits are generous (bench-bw measures how fast it settles: 2-8 s
// on this machine). Needs root (namespace, tc); skipped with the reason when not root.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lossNamespaceUnavailable } from './lib/netns.mjs';
import { receiverSnapshot, startLossCall } from './lib/losscall.mjs';

const CAPTURE = { width: 1280, height: 720, layers: 3 };
const CAP_KBPS = 500;
// The publisher's 720p layer needs ~750 kbps: it cannot fit a 500 kbps link.
const MAX_HEIGHT_UNDER_CAP = 360;
const SETTLE_MS = 30_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll the receiving page once a second until `ok(snapshot)` or the time is up; returns the
// last snapshot and whether it was reached.
async function waitFor(page, ok, ms) {
  const end = Date.now() + ms;
  let s = await receiverSnapshot(page);
  while (!ok(s) && Date.now() < end) {
    await sleep(1000);
    s = await receiverSnapshot(page);
  }
  return { s, reached: ok(s) };
}

describe('bandwidth allocation behind a real bandwidth cap', () => {
  const skip = process.getuid?.() !== 0
    ? 'needs root: a network namespace and tc make the bandwidth cap' : false;

  test(`a ${CAP_KBPS} kbps receiver gets a layer that fits, and 720p back when the cap goes`, { skip, timeout: 180_000 }, async () => {
    const reason = lossNamespaceUnavailable();
    assert.equal(reason, null, `cannot make a bandwidth cap here: ${reason}`);
    const call = await startLossCall({ capture: CAPTURE, serverEnv: { YUNSHI_ALLOCATE_BANDWIDTH: 'true' } });
    // A large window: the receiving tile asks for 720p, so only the cap limits the layer.
    await call.inside.setViewportSize({ width: 1920, height: 1080 });
    try {
      const uncapped = await waitFor(call.inside, (s) => s.video.frameHeight === 720, SETTLE_MS);
      assert.ok(uncapped.reached, `without a cap the receiver never reached 720p (height ${uncapped.s.video.frameHeight})`);

      call.ns.setRate({ downKbps: CAP_KBPS });
      const capped = await waitFor(call.inside, (s) => s.video.frameHeight > 0 && s.video.frameHeight <= MAX_HEIGHT_UNDER_CAP, SETTLE_MS);
      assert.ok(capped.reached, `at ${CAP_KBPS} kbps the receiver stayed at ${capped.s.video.frameHeight}p`);
      // Settled: video keeps decoding at the lower layer.
      await sleep(3000);
      const a = await receiverSnapshot(call.inside);
      await sleep(5000);
      const b = await receiverSnapshot(call.inside);
      const frames = b.video.framesDecoded - a.video.framesDecoded;
      console.log(`capped at ${CAP_KBPS} kbps: ${b.video.frameHeight}p, ${frames} frames in 5 s`);
      assert.ok(b.video.frameHeight <= MAX_HEIGHT_UNDER_CAP, `at ${CAP_KBPS} kbps the receiver went back up to ${b.video.frameHeight}p`);
      // At least 2 fps: decoding, not frozen (local runs 55-107 frames, CI's debug build 32).
      assert.ok(frames >= 10, `at ${CAP_KBPS} kbps only ${frames} frames decoded in 5 s`);

      call.ns.setRate({});
      const lifted = await waitFor(call.inside, (s) => s.video.frameHeight === 720, SETTLE_MS);
      assert.ok(lifted.reached, `after the cap was lifted the receiver stayed at ${lifted.s.video.frameHeight}p`);
    } catch (err) {
      process.stderr.write(`\n--- yunshi output (${call.server.url}) ---\n${call.server.logs().slice(-20000)}\n--- end ---\n`);
      throw err;
    } finally {
      call.ns.setRate({});
      await call.close();
    }
  });
});
