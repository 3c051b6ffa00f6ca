// Simulcast layer selection end to end: the web client publishes VP8 simulcast, a viewer
// asks (set_quality) for no more than its tile shows, and the server forwards the stream
// that fits; the publisher is told to switch off the layer nobody receives. Two pages only, capturing 640×360 in two layers (320×180 'h' and 640×360 'f'),
// which a 2-core machine encodes comfortably.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRoom, createUser, loginToken } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { printLogsOnFailure, startServer } from './lib/server.mjs';
import { outboundVideoStats, pollUntil, receivedVideo } from './lib/stats.mjs';
import { joinPinned, joinViaDeepLink } from './lib/ui.mjs';

const CAPTURE = { width: 640, height: 360, layers: 2 };
const SMALL = 180;                  // height of the 'h' layer, and the pinned tile's height
const SAMPLE_EVERY_MS = 250;
const SAMPLE_FOR_MS = 8_000;
const MIN_FRAMES_WHILE_SAMPLING = 40;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The publish connection's simulcast encodings: { rid: active }.
async function encodingsOf(page) {
  return page.evaluate(() => Object.fromEntries((window.yunshi.pcPublish?.getTransceivers() ?? [])
    .flatMap((t) => t.sender.getParameters().encodings ?? []).filter((e) => e.rid).map((e) => [e.rid, e.active !== false])));
}

// What the page last asked of that participant's video, and the server's error text if any.
async function askedOf(page, participantId) {
  return page.evaluate((id) => ({
    quality: Object.values(window.yunshi.quality).filter((q) => q.participantId === id),
    errors: window.yunshi.events.filter((e) => e.type === 'error' && e.dir === 'recv').length,
    // How long before the subscribe answer that accepts the track the first set_quality
    // went out (it is sent as the track appears, while the offer is being applied).
    aheadOfAnswerMs: (() => {
      const events = window.yunshi.events;
      const sent = events.find((e) => e.type === 'set_quality' && e.dir === 'send');
      const answer = sent && events.find((e) => e.type === 'subscribe_answer' && e.dir === 'send' && e.t >= sent.t);
      return answer ? Math.round(answer.t - sent.t) : null;
    })(),
    message: document.getElementById('room-message')?.textContent || '',
  }), participantId);
}

describe('simulcast layers', () => {
  let server;
  let browser;
  let token;
  let publisherUser;
  let viewerUser;

  before(async () => {
    server = await startServer();
    token = await loginToken(server.url, 'admin', server.adminPassword);
    publisherUser = await createUser(server.url, token, 'publisher');
    viewerUser = await createUser(server.url, token, 'viewer');
    browser = await launchChromium({ capture: CAPTURE });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  // The publisher joins and its publish connection is up; returns {page, id}.
  async function joinPublisher(roomId) {
    const page = await browser.newPage();
    const id = await joinViaDeepLink(page, server.url, { ...publisherUser, roomId });
    await page.waitForFunction(() => window.yunshi.pcPublish?.connectionState === 'connected', null,
      { timeout: 20_000 });
    return { page, id };
  }

  test('a viewer pinned to 180 px receives only the small layer; the publisher stops the large one', () => printLogsOnFailure(server, async () => {
    const room = await createRoom(server.url, token);
    const publisher = await joinPublisher(room.id);

    // Pin before joining, so that the very first set_quality (sent as the track arrives,
    // before the subscribe answer) already asks for 180 px.
    const viewer = await browser.newPage();
    await joinPinned(viewer, server.url, { ...viewerUser, roomId: room.id }, { participantId: publisher.id, height: SMALL });

    // The publisher starts with both layers; once the viewer's pin holds (3 s), nobody receives
    // 'f' and the server has the publisher switch it off (publish_layers), while 'h' goes on.
    await pollUntil(() => outboundVideoStats(publisher.page, 'yunshi.pcPublish'),
      (streams) => new Set(streams.filter((s) => s.rid && s.bytesSent > 0).map((s) => s.rid)).size >= 2,
      { timeoutMs: 15_000, intervalMs: 500, what: 'two simulcast streams with distinct rids sending' });
    const off = await pollUntil(() => encodingsOf(publisher.page), (e) => e.f === false,
      { timeoutMs: 20_000, intervalMs: 500, what: "the publisher's 'f' encoding switched off by the server" });
    await sleep(1000);
    const sent0 = await outboundVideoStats(publisher.page, 'yunshi.pcPublish');
    await sleep(2000);
    const sent1 = await outboundVideoStats(publisher.page, 'yunshi.pcPublish');
    const grew = (rid) => (sent1.find((s) => s.rid === rid)?.bytesSent ?? 0) > (sent0.find((s) => s.rid === rid)?.bytesSent ?? 0);
    console.log(`publisher encodings after the pin: ${JSON.stringify(off)}; over 2 s 'h' grew: ${grew('h')}, 'f' grew: ${grew('f')}`);
    assert.ok(grew('h'), `the 'h' layer stopped too: ${JSON.stringify({ before: sent0, after: sent1 })}`);
    assert.ok(!grew('f'), `the switched-off 'f' layer still sends: ${JSON.stringify({ before: sent0, after: sent1 })}`);

    // The viewer asked for 180 px, and the server did not refuse the message.
    const asked = await askedOf(viewer, publisher.id);
    assert.ok(asked.quality.some((q) => q.max_height === SMALL), `set_quality sent: ${JSON.stringify(asked)}`);
    assert.equal(asked.errors, 0, `the server answered set_quality with an error: "${asked.message}"`);
    console.log(`viewer sent set_quality ${JSON.stringify(asked.quality.map(({ max_height, paused }) => ({ max_height, paused })))} ` +
      `${asked.aheadOfAnswerMs} ms before the subscribe answer that accepted the track`);

    // From the first decoded frame on, nothing taller than the pin arrives.
    const first = await pollUntil(() => receivedVideo(viewer), (v) => v?.framesDecoded > 0,
      { timeoutMs: 20_000, what: 'a first decoded video frame on the viewer' });
    const heights = [];
    let last = first;
    const end = Date.now() + SAMPLE_FOR_MS;
    while (Date.now() < end) {
      last = await receivedVideo(viewer);
      heights.push(last?.frameHeight);
      await sleep(SAMPLE_EVERY_MS);
    }
    const decoded = last.framesDecoded - first.framesDecoded;
    console.log(`viewer pinned to ${SMALL}: ${heights.length} samples, heights {${[...new Set(heights)].join(', ')}}, ` +
      `frames ${first.framesDecoded} -> ${last.framesDecoded} (${last.codec})`);
    assert.ok(heights.every((h) => h <= SMALL), `frame heights over ${SMALL}: ${JSON.stringify(heights)}`);
    assert.ok(decoded >= MIN_FRAMES_WHILE_SAMPLING,
      `only ${decoded} frames decoded in ${SAMPLE_FOR_MS / 1000} s (want ≥ ${MIN_FRAMES_WHILE_SAMPLING})`);

    await viewer.close();
    await publisher.page.close();
  }));

  // Proves the test above can fail: the same call without a pin gets the large layer.
  test('without a pin the viewer\'s tile gets more than 180 px, and follows the tile', () => printLogsOnFailure(server, async () => {
    const room = await createRoom(server.url, token);
    const publisher = await joinPublisher(room.id);
    const viewer = await browser.newPage();
    await joinViaDeepLink(viewer, server.url, { ...viewerUser, roomId: room.id });

    const first = await pollUntil(() => receivedVideo(viewer), (v) => v?.framesDecoded > 0,
      { timeoutMs: 20_000, what: 'a first decoded video frame on the viewer' });
    const big = await pollUntil(() => receivedVideo(viewer), (v) => v?.frameHeight > SMALL,
      { timeoutMs: 10_000, intervalMs: SAMPLE_EVERY_MS, what: `a received frame taller than ${SMALL} px` });
    const asked = await askedOf(viewer, publisher.id);
    console.log(`viewer unpinned: asked ${JSON.stringify(asked.quality.map(({ max_height, paused }) => ({ max_height, paused })))}, ` +
      `received ${big.frameWidth}x${big.frameHeight}, frames ${first.framesDecoded} -> ${big.framesDecoded}`);
    assert.ok(asked.quality.some((q) => q.max_height > SMALL && q.paused === false),
      `the tile asked for more than ${SMALL} px: ${JSON.stringify(asked)}`);
    const encodings = await encodingsOf(publisher.page);
    assert.equal(encodings.f, true, `'f' is received, so it stays on: ${JSON.stringify(encodings)}`);

    // The client follows its tile: a smaller window asks for less, a hidden tile for nothing.
    const tall = asked.quality[0].max_height;
    await viewer.setViewportSize({ width: 640, height: 330 });
    const smaller = await pollUntil(() => askedOf(viewer, publisher.id),
      (a) => a.quality[0]?.max_height < tall * 0.8,
      { timeoutMs: 5_000, what: `set_quality with less than ${tall} px after shrinking the window` });
    await viewer.evaluate((id) => { document.querySelector(`[data-tile="${id}"]`).hidden = true; }, publisher.id);
    await pollUntil(() => askedOf(viewer, publisher.id), (a) => a.quality[0]?.paused === true,
      { timeoutMs: 5_000, what: 'set_quality paused:true for a hidden tile' });
    console.log(`viewer window shrunk: asked ${smaller.quality[0].max_height} px; tile hidden: paused`);

    await viewer.close();
    await publisher.page.close();
  }));
});
