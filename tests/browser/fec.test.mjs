// Video FEC against a real Chromium: the server protects the subscriber's video with ULPFEC
// inside RED (video_fec = "always"), media goes through a 100 ms round-trip relay so that
// retransmission alone comes late, and nftables drops 10 % of the datagrams towards the
// receiver. Chromium's ULPFEC receiver recovers packets from the parity before the
// retransmissions arrive; a parity that did not match the bytes Chromium holds would hand its
// decoder corrupted packets (a deliberately corrupted parity gave 89 frames, 10 s frozen and
// 3 keyframe requests in 15 s; the real one 265 frames, 0.7 s frozen, none).
//
// Needs root (network namespace, nftables), like loss.test.mjs.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lossNamespaceUnavailable } from './lib/netns.mjs';
import { receiverSnapshot, serverCounters, startLossCall } from './lib/losscall.mjs';

const CAPTURE = { width: 640, height: 360, layers: 2 };
const LOSS_PERCENT = 10;
const RTT_MS = 100;
const WINDOW_MS = 15_000;
const MIN_FRAMES = 120;
const MAX_FROZEN_S = 3;
const MAX_KEYFRAME_REQUESTS = 1;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('video FEC (ULPFEC in RED) decoded by Chromium', () => {
  const skip = process.getuid?.() !== 0
    ? 'needs root: a network namespace and nftables rules make the packet loss' : false;

  test(`${LOSS_PERCENT} % loss at ${RTT_MS} ms RTT: parity arrives and the video stays intact`, { skip, timeout: 120_000 }, async () => {
    const reason = lossNamespaceUnavailable();
    assert.equal(reason, null, `cannot make real packet loss here: ${reason}`);
    const call = await startLossCall({ capture: CAPTURE, serverEnv: { YUNSHI_VIDEO_FEC: 'always' }, rttMs: RTT_MS });
    try {
      const sdp = await call.inside.evaluate(() => window.yunshi.pcSubscribe.remoteDescription?.sdp ?? '');
      assert.match(sdp, /a=rtpmap:\d+ ulpfec\/90000/, 'the server offers ulpfec for video');
      const before = await serverCounters(call.server, call.token);
      call.ns.setLoss({ ports: call.server.udpPorts, down: LOSS_PERCENT });
      const first = await receiverSnapshot(call.inside);
      await sleep(WINDOW_MS);
      const last = await receiverSnapshot(call.inside);
      const kernel = call.ns.lossCounters().down;
      call.ns.clearLoss();
      const after = await serverCounters(call.server, call.token);

      const d = (k) => (last.video[k] ?? 0) - (first.video[k] ?? 0);
      const fecSent = (after.fec_out ?? 0) - (before.fec_out ?? 0);
      console.log(`${LOSS_PERCENT} % loss, ${RTT_MS} ms RTT, ${WINDOW_MS / 1000} s: kernel dropped ${kernel.dropped}/${kernel.seen}; ` +
        `FEC packets sent ${fecSent}; video +${d('framesDecoded')} frames, ${d('totalFreezesDuration').toFixed(1)} s frozen, ` +
        `${d('pliCount')} keyframe requests, ${d('retransmittedPacketsReceived')} retransmissions`);

      assert.ok(kernel.dropped > 0, 'the nftables rule dropped nothing');
      assert.ok(fecSent > 0, 'the server sent no FEC packets');
      assert.ok(d('framesDecoded') >= MIN_FRAMES, `only ${d('framesDecoded')} frames decoded (want ≥ ${MIN_FRAMES})`);
      assert.ok(d('totalFreezesDuration') <= MAX_FROZEN_S, `video frozen ${d('totalFreezesDuration').toFixed(1)} s (want ≤ ${MAX_FROZEN_S})`);
      assert.ok(d('pliCount') <= MAX_KEYFRAME_REQUESTS,
        `${d('pliCount')} keyframe requests: recovered packets may be corrupt (want ≤ ${MAX_KEYFRAME_REQUESTS})`);
    } catch (err) {
      process.stderr.write(`\n--- yunshi output (${call.server.url}) ---\n${call.server.logs().slice(-20000)}\n--- end ---\n`);
      throw err;
    } finally {
      await call.close();
    }
  });
});
