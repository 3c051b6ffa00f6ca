// End-to-end conference tests: real server binary, real web client, headless Chromium with
// fake camera and microphone. Run with `npm test` in this folder (see package.json).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRoom, createUser, loginToken } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { printLogsOnFailure, startServer } from './lib/server.mjs';
import { expectAudioFlowing, expectVideoFlowing } from './lib/stats.mjs';
import { joinViaDeepLink, joinViaRoomList, waitForTile } from './lib/ui.mjs';

const SUBSCRIBE = 'yunshi.pcSubscribe';

describe('conference', () => {
  let server;
  let browser;
  let token;
  let alice;
  let bob;

  before(async () => {
    server = await startServer();
    token = await loginToken(server.url, 'admin', server.adminPassword);
    alice = await createUser(server.url, token, 'alice');
    bob = await createUser(server.url, token, 'bob');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('two participants see and hear each other; leaving removes the tile', () => printLogsOnFailure(server, async () => {
    const room = await createRoom(server.url, token);
    const alicePage = await browser.newPage();
    const bobPage = await browser.newPage();

    // One joins by clicking the room in the list, the other through the deep link.
    const aliceId = await joinViaRoomList(alicePage, server.url, { ...alice, roomId: room.id });
    const bobId = await joinViaDeepLink(bobPage, server.url, { ...bob, roomId: room.id });
    assert.notEqual(aliceId, bobId);

    await waitForTile(alicePage, bobId);
    await waitForTile(bobPage, aliceId);
    // Tiles are labelled with the other participant's name.
    assert.equal(await alicePage.locator(`#grid [data-tile="${bobId}"] .tile-name`).textContent(), 'bob');
    assert.equal(await bobPage.locator(`#grid [data-tile="${aliceId}"] .tile-name`).textContent(), 'alice');

    for (const [page, who] of [[alicePage, 'alice'], [bobPage, 'bob']]) {
      const video = await expectVideoFlowing(page, SUBSCRIBE, { minFrames: 50, windowMs: 10_000 });
      const audio = await expectAudioFlowing(page, SUBSCRIBE);
      console.log(`${who}: frames ${video.first.framesDecoded} -> ${video.last.framesDecoded}, ` +
        `audio samples ${audio.first.totalSamplesReceived} -> ${audio.last.totalSamplesReceived} ` +
        `(concealed ${audio.last.concealedSamples})`);
    }

    // The remote <video> plays sound: it must not be muted.
    assert.equal(await alicePage.locator(`#grid video[data-participant="${bobId}"]`).evaluate((v) => v.muted), false);
    // A first rendered frame was recorded for the benchmarks.
    const firstFrames = await bobPage.evaluate(() => window.yunshi.events.filter((e) => e.type === 'first_frame'));
    assert.ok(firstFrames.some((e) => e.participant === aliceId), 'first_frame event for alice on bob\'s page');

    await bobPage.locator('#leave').click();
    await alicePage.locator(`#grid video[data-participant="${bobId}"]`).waitFor({ state: 'detached', timeout: 10_000 });
    await bobPage.locator('#room-list').waitFor({ state: 'visible' });

    await alicePage.close();
    await bobPage.close();
  }));

  test('a user who denies the camera joins as a viewer and still receives', () => printLogsOnFailure(server, async () => {
    const room = await createRoom(server.url, token);
    const denied = await launchChromium({ media: 'denied' });
    try {
      const speaker = await browser.newPage();
      const speakerId = await joinViaDeepLink(speaker, server.url, { ...alice, roomId: room.id });

      const viewer = await denied.newPage();
      await joinViaDeepLink(viewer, server.url, { ...bob, roomId: room.id });
      const notice = viewer.locator('#media-notice');
      await notice.waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await notice.textContent(), /you are joining as a viewer/);
      assert.equal(await viewer.evaluate(() => window.yunshi.pcPublish), null, 'a viewer has no publish connection');

      await waitForTile(viewer, speakerId);
      await expectVideoFlowing(viewer, SUBSCRIBE, { minFrames: 50, windowMs: 10_000 });
      await speaker.close();
    } finally {
      await denied.close();
    }
  }));
});

describe('server loss', () => {
  test('killing the server shows the connection-lost banner', async () => {
    const server = await startServer();
    const browser = await launchChromium();
    try {
      await printLogsOnFailure(server, async () => {
        const token = await loginToken(server.url, 'admin', server.adminPassword);
        const room = await createRoom(server.url, token);
        const page = await browser.newPage();
        await joinViaDeepLink(page, server.url, { username: 'admin', password: server.adminPassword, roomId: room.id });
        assert.equal(await page.locator('#banner').isVisible(), false);

        await server.kill();
        const banner = page.locator('#banner');
        await banner.waitFor({ state: 'visible', timeout: 15_000 });
        assert.match(await banner.textContent(), /Connection to the server was lost/);
        assert.match(await banner.locator('button').textContent(), /Rejoin/);
      });
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
