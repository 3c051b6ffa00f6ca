// AV1 SVC across a cascade link: the Dependency Descriptor crosses with the media, so the node
// above cuts the spatial layers for its own viewers. A county venue (the web client in
// Chromium) publishes one AV1 stream with two spatial layers (L2T3_KEY, 320×180 and 640×360);
// in the city's room, one hop up, a viewer pinned to 180 px gets the base layer only and an
// unpinned one the full picture. Without the descriptor the city could not tell the layers
// apart (nor could its viewers assemble them: Chromium decodes nothing of AV1 SVC without it).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createUser, loginToken, request } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { startServer } from './lib/server.mjs';
import { outboundVideoStats, pollUntil, sampleReceivedVideo } from './lib/stats.mjs';
import { joinPinned, joinViaDeepLink } from './lib/ui.mjs';

const SECRET = 'svc-cascade-test-secret';
const CAPTURE = { width: 640, height: 360, layers: 2, codec: 'av1' };
const SMALL = 180;
const SAMPLE_FOR_MS = 8_000;
const MIN_FRAMES_WHILE_SAMPLING = 40;
let city;
let county;
let viewing;

before(async () => {
  const node = (name, parent) => ({
    workers: 1,
    env: { YUNSHI_NODE_NAME: name, YUNSHI_CASCADE_SECRET: SECRET, ...(parent ? { YUNSHI_CASCADE_PARENT: parent.url } : {}) },
  });
  city = await startServer(node('city'));
  county = await startServer(node('county', city));
  viewing = await launchChromium({ media: 'denied' });
});

after(async () => {
  await viewing?.close();
  for (const s of [county, city]) await s?.stop();
});

async function showLogs(fn) {
  try {
    return await fn();
  } catch (err) {
    for (const [name, s] of [['city', city], ['county', county]]) {
      process.stderr.write(`\n--- ${name} (${s?.url}) ---\n${s?.logs().slice(-20000)}\n`);
    }
    throw err;
  }
}

async function descriptorCounts(server) {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const count = (result) => Number(new RegExp(`^yunshi_dependency_descriptors_total\\{result="${result}"\\} (\\d+)`, 'm')
    .exec(metrics)?.[1] ?? 0);
  return { read: count('read'), unreadable: count('unreadable') };
}

const sample = (page) => sampleReceivedVideo(page, { forMs: SAMPLE_FOR_MS });

test('AV1 SVC crosses a link with its descriptor, and the node above cuts layers per viewer', () => showLogs(async () => {
  const tokens = {};
  for (const [name, s] of [['city', city], ['county', county]]) {
    tokens[name] = await loginToken(s.url, 'admin', s.adminPassword);
    await request(s.url, 'POST', '/api/v1/rooms', { token: tokens[name], body: { id: 'conf', name: 'conf' }, expect: 201 });
  }
  const venue = await createUser(county.url, tokens.county, 'venue');
  const watcher = await createUser(city.url, tokens.city, 'watcher');

  const publishing = await launchChromium({ capture: CAPTURE });
  try {
    const page = await publishing.newPage();
    await joinViaDeepLink(page, county.url, { ...venue, roomId: 'conf' });
    const sent = await pollUntil(() => outboundVideoStats(page, 'yunshi.pcPublish'),
      (s) => s.some((x) => x.framesEncoded > 10), { timeoutMs: 20_000, what: 'the venue encoding video' });
    assert.equal(sent.length, 1, 'one stream (SVC), not simulcast');
    assert.equal(sent[0].scalabilityMode, 'L2T3_KEY');

    // The venue's video in the city's room, as a track of the county's link member.
    const member = await pollUntil(async () => {
      const room = await request(city.url, 'GET', '/api/v1/rooms/conf', { token: tokens.city });
      return room.members.find((m) => m.name === 'cascade:county' && m.tracks.some((t) => t.kind === 'video'));
    }, (m) => m, { timeoutMs: 20_000, what: "the county's video in the city's room" });

    const before = await descriptorCounts(city);
    const pinned = await viewing.newPage();
    await joinPinned(pinned, city.url, { ...watcher, roomId: 'conf' }, { participantId: member.id, height: SMALL });
    const full = await viewing.newPage();
    await joinViaDeepLink(full, city.url, { ...watcher, roomId: 'conf' });

    const [small, large] = await Promise.all([sample(pinned), sample(full)]);
    const after = await descriptorCounts(city);
    console.log(`descriptors read by the city: ${after.read - before.read}, unreadable: ${after.unreadable - before.unreadable}`);
    console.log(`one hop up, pinned to ${SMALL}: heights {${[...new Set(small.heights)].join(', ')}}, ${small.decoded} frames ` +
      `(${small.last.codec}); unpinned: heights {${[...new Set(large.heights)].join(', ')}}, ${large.decoded} frames`);
    assert.equal(small.last.codec, 'video/AV1');
    assert.ok(small.heights.every((h) => h <= SMALL), `frame heights over ${SMALL}: ${JSON.stringify(small.heights)}`);
    assert.ok(small.decoded >= MIN_FRAMES_WHILE_SAMPLING, `the pinned viewer decoded only ${small.decoded} frames`);
    assert.ok(large.heights.some((h) => h > SMALL), `the unpinned viewer never got the upper layer: ${JSON.stringify(large.heights)}`);
    assert.ok(large.decoded >= MIN_FRAMES_WHILE_SAMPLING, `the unpinned viewer decoded only ${large.decoded} frames`);

    // The web client gives the venue beyond the link a tile of its own, named after it (the
    // link's participant, which could carry several venues, shows no tile of its own).
    assert.equal(await full.textContent(`#grid [data-tile="${member.id}/county/venue"] .tile-name`), 'venue · county');
    assert.equal(await full.locator(`#grid [data-tile="${member.id}"]`).evaluate((t) => t.hidden), true);

    // The city read the descriptors that came over the link.
    assert.ok(after.read - before.read > 100, `the city read ${after.read - before.read} descriptors`);
    assert.equal(after.unreadable - before.unreadable, 0);
  } finally {
    await publishing.close();
  }
}));
