// Layers only the Dependency Descriptor header extension describes, end to end:
// - AV1 SVC: the web client publishes one AV1 stream with two spatial layers (L2T3_KEY,
//   320×180 and 640×360). The server gives a viewer pinned to 180 px only the base layer, and
//   an unpinned viewer both. Nothing is re-encoded: the same stream, cut per viewer.
// - H.264 temporal layers (simulcast with L1T3): H.264's payload has no temporal id, so a
//   viewer limited to the base temporal layer gets a quarter of the frames only if the server
//   reads the descriptor.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRoom, createUser, loginToken } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { printLogsOnFailure, startServer } from './lib/server.mjs';
import { outboundVideoStats, pollUntil, sampleReceivedVideo } from './lib/stats.mjs';
import { joinPinned, joinViaDeepLink } from './lib/ui.mjs';

const AV1_CAPTURE = { width: 640, height: 360, layers: 2, codec: 'av1' };
const H264_CAPTURE = { width: 640, height: 360, layers: 2, codec: 'h264' };
const SMALL = 180;
const SAMPLE_EVERY_MS = 250;
const SAMPLE_FOR_MS = 8_000;
const MIN_FRAMES_WHILE_SAMPLING = 40;

// The descriptor counters from /metrics: {read, unreadable}.
async function descriptorCounts(server) {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const count = (result) => Number(new RegExp(`^yunshi_dependency_descriptors_total\\{result="${result}"\\} (\\d+)`, 'm')
    .exec(metrics)?.[1] ?? 0);
  return { read: count('read'), unreadable: count('unreadable') };
}

// The codec a page's publish connection sends video with.
async function sentCodec(page) {
  return page.evaluate(async () => {
    const report = await window.yunshi.pcPublish.getStats();
    for (const s of report.values()) {
      if (s.type === 'outbound-rtp' && s.kind === 'video') return report.get(s.codecId)?.mimeType ?? null;
    }
    return null;
  });
}

// Samples a viewer's received video for SAMPLE_FOR_MS from its first decoded frame.
const sample = (page) => sampleReceivedVideo(page, { forMs: SAMPLE_FOR_MS, everyMs: SAMPLE_EVERY_MS });

describe('layers from the Dependency Descriptor (AV1 SVC, H.264 temporal)', () => {
  let server;
  let viewing;
  let token;
  let publisherUser;
  let viewerUser;

  before(async () => {
    server = await startServer();
    token = await loginToken(server.url, 'admin', server.adminPassword);
    publisherUser = await createUser(server.url, token, 'svc-publisher');
    viewerUser = await createUser(server.url, token, 'svc-viewer');
    // Viewers without a camera join receive-only: no more encoders on a 2-core machine.
    viewing = await launchChromium({ media: 'denied' });
  });

  after(async () => {
    await viewing?.close();
    await server?.stop();
  });

  // Joins a viewer, pinned (height, temporal layer) before it subscribes when `pin` is given.
  async function joinViewer(roomId, publisherId, pin) {
    const page = await viewing.newPage();
    if (!pin) {
      await joinViaDeepLink(page, server.url, { ...viewerUser, roomId });
      return page;
    }
    await joinPinned(page, server.url, { ...viewerUser, roomId }, { participantId: publisherId, ...pin });
    return page;
  }

  // A publisher in a new room, in its own browser sending `capture`; returns once it encodes.
  async function startPublisher(capture) {
    const browser = await launchChromium({ capture });
    try {
      const room = await createRoom(server.url, token);
      const page = await browser.newPage();
      const id = await joinViaDeepLink(page, server.url, { ...publisherUser, roomId: room.id });
      const sent = await pollUntil(() => outboundVideoStats(page, 'yunshi.pcPublish'),
        (s) => s.some((x) => x.framesEncoded > 10),
        { timeoutMs: 20_000, what: 'the publisher encoding video' });
      const codec = await sentCodec(page);
      console.log(`publisher: ${codec}, ${JSON.stringify(sent.map(({ rid, scalabilityMode, frameWidth, frameHeight, encoderImplementation }) =>
        ({ rid, scalabilityMode, frameWidth, frameHeight, encoderImplementation })))}`);
      return { browser, page, roomId: room.id, id, sent, codec };
    } catch (err) {
      await browser.close();
      throw err;
    }
  }

  test('AV1 SVC: a viewer pinned to 180 px gets the base layer, an unpinned one the full picture', () => printLogsOnFailure(server, async () => {
    const { browser: publishing, roomId, id: publisherId, sent, codec } = await startPublisher(AV1_CAPTURE);
    try {
      assert.equal(codec, 'video/AV1', 'the publisher sends AV1');
      assert.equal(sent.length, 1, 'one stream (SVC), not simulcast');
      assert.equal(sent[0].scalabilityMode, 'L2T3_KEY');

      const before = await descriptorCounts(server);
      const pinned = await joinViewer(roomId, publisherId, { height: SMALL });
      const full = await joinViewer(roomId, publisherId, null);

      const [small, large] = await Promise.all([sample(pinned), sample(full)]);
      console.log(`pinned to ${SMALL}: heights {${[...new Set(small.heights)].join(', ')}}, ${small.decoded} frames (${small.last.codec}); ` +
        `unpinned: heights {${[...new Set(large.heights)].join(', ')}}, ${large.decoded} frames`);
      assert.equal(small.last.codec, 'video/AV1');
      assert.ok(small.heights.every((h) => h <= SMALL), `frame heights over ${SMALL}: ${JSON.stringify(small.heights)}`);
      assert.ok(small.decoded >= MIN_FRAMES_WHILE_SAMPLING, `pinned viewer decoded only ${small.decoded} frames`);
      assert.ok(large.heights.some((h) => h > SMALL), `the unpinned viewer never got the upper layer: ${JSON.stringify(large.heights)}`);
      assert.ok(large.decoded >= MIN_FRAMES_WHILE_SAMPLING, `unpinned viewer decoded only ${large.decoded} frames`);

      // The server read every descriptor it was given.
      const after = await descriptorCounts(server);
      console.log(`dependency descriptors read: ${after.read - before.read}, unreadable: ${after.unreadable - before.unreadable}`);
      assert.ok(after.read - before.read > 100, `the server read ${after.read - before.read} descriptors`);
      assert.equal(after.unreadable, 0);

      await pinned.close();
      await full.close();
    } finally {
      await publishing.close();
    }
  }));

  test('H.264: a viewer limited to the base temporal layer gets a fraction of the frames', () => printLogsOnFailure(server, async () => {
    const { browser: publishing, page: publisherPage, roomId, id: publisherId, sent, codec } = await startPublisher(H264_CAPTURE);
    // Chromium starts a simulcast publisher on its lowest stream and adds the others as its
    // estimate grows (and the server switches off streams nobody watches): a stream that has not
    // encoded yet reports no mode (once on CI: "f" without one, "h" in L1T3). So each stream's
    // mode is judged once it encodes, here and again after the viewers have watched.
    const encoding = (streams) => streams.filter((s) => s.framesEncoded > 0);
    const threeTemporalLayers = (streams) => encoding(streams).length > 0 && encoding(streams).every((s) => s.scalabilityMode === 'L1T3');
    try {
      assert.equal(codec, 'video/H264', 'the publisher sends H.264');
      assert.ok(threeTemporalLayers(sent), `three temporal layers per stream: ${JSON.stringify(sent)}`);

      const before = await descriptorCounts(server);
      const base = await joinViewer(roomId, publisherId, { height: 360, temporal: 0 });
      const full = await joinViewer(roomId, publisherId, { height: 360 });
      const [slow, fast] = await Promise.all([sample(base), sample(full)]);
      console.log(`base temporal layer only: ${slow.decoded} frames in ${SAMPLE_FOR_MS / 1000} s (${slow.last.codec}); ` +
        `all layers: ${fast.decoded} frames`);
      assert.equal(slow.last.codec, 'video/H264');
      assert.ok(fast.decoded >= MIN_FRAMES_WHILE_SAMPLING, `the full-rate viewer decoded only ${fast.decoded} frames`);
      assert.ok(slow.decoded > 0, 'the base-layer viewer decodes');
      // T0 is every fourth frame of L1T3: a quarter, allowing for rate changes and timing.
      assert.ok(slow.decoded <= fast.decoded * 0.4, `base-layer viewer got ${slow.decoded} frames, full-rate ${fast.decoded}`);
      const after = await descriptorCounts(server);
      console.log(`dependency descriptors read: ${after.read - before.read}, unreadable: ${after.unreadable - before.unreadable}`);
      assert.ok(after.read - before.read > 100);
      const watched = await outboundVideoStats(publisherPage, 'yunshi.pcPublish');
      console.log(`publisher's streams after the viewers watched: ${JSON.stringify(watched.map(({ rid, scalabilityMode, framesEncoded }) => ({ rid, scalabilityMode, framesEncoded })))}`);
      assert.ok(threeTemporalLayers(watched), `three temporal layers per stream: ${JSON.stringify(watched)}`);

      await base.close();
      await full.close();
    } finally {
      await publishing.close();
    }
  }));
});
