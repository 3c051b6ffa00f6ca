// The command-centre console (clients/console) on the top of a real three-level cascade
// (province ← city ← county, three yunshi processes): it shows the tree with every link up,
// its wall plays two county venues' cameras (a slot each, named by venue) that crossed two
// links, a slot's picker switches venues, a venue in no slot stops crossing the links, its
// roll call, layout and lock direct an official's web client at the province, and its
// controls reach the county and come back acknowledged.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createUser, loginToken, request } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { startServer } from './lib/server.mjs';
import { expectVideoFlowing } from './lib/stats.mjs';
import { joinViaDeepLink } from './lib/ui.mjs';
import { publishWhip } from './lib/whip.mjs';

const SECRET = 'console-test-cascade-secret';
let province;
let city;
let county;
let browser;

before(async () => {
  const cascade = (name, parent) => ({
    workers: 1,
    env: {
      YUNSHI_NODE_NAME: name,
      YUNSHI_CASCADE_SECRET: SECRET,
      ...(parent ? { YUNSHI_CASCADE_PARENT: parent.url } : {}),
    },
  });
  province = await startServer(cascade('province'));
  city = await startServer(cascade('city', province));
  county = await startServer(cascade('county', city));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const s of [county, city, province]) await s?.stop();
});

async function showLogs(fn) {
  try {
    return await fn();
  } catch (err) {
    for (const [name, s] of [['province', province], ['city', city], ['county', county]]) {
      process.stderr.write(`\n--- ${name} (${s?.url}) ---\n${s?.logs().slice(-20000)}\n`);
    }
    throw err;
  }
}

test('the console shows the cascade, plays a venue two levels down and controls it', () => showLogs(async () => {
  const tokens = {};
  for (const [name, s] of [['province', province], ['city', city], ['county', county]]) {
    tokens[name] = await loginToken(s.url, 'admin', s.adminPassword);
    await request(s.url, 'POST', '/api/v1/rooms', { token: tokens[name], body: { id: 'conf', name: 'conf' }, expect: 201 });
  }

  // Two venues in the county publish their cameras (Chromium's own WebRTC, WHIP), as the
  // county's users hall-a and hall-b.
  for (const hall of ['hall-a', 'hall-b']) {
    const user = await createUser(county.url, tokens.county, hall);
    const venue = await browser.newPage();
    await venue.goto(`${county.url}/healthz`);
    const whip = await publishWhip(venue, { roomId: 'conf', token: await loginToken(county.url, user.username, user.password) });
    assert.equal(whip.status, 201, JSON.stringify(whip));
  }

  // The province's console, signed in through its own form.
  const page = await browser.newPage();
  await page.goto(`${province.url}/console/?room=conf&cols=3x2`);
  await page.fill('#console-username', 'admin');
  await page.fill('#console-password', province.adminPassword);
  await page.click('#console-login-submit');

  // The tree: city below the province, county below the city, both links up.
  for (const node of ['city', 'county']) {
    await page.waitForSelector(`.node-row[data-node="${node}"] .state[data-state="up"]`, { timeout: 15_000 });
  }
  assert.equal(await page.textContent('#console-node'), 'province');

  // The wall plays both county venues' cameras, two hops up, a tile each (they reach the
  // province's room as tracks of one participant, the city's link).
  const { last } = await expectVideoFlowing(page, 'yunshi.pcSubscribe', { minFrames: 30, firstFrameMs: 30_000 });
  assert.ok(last.framesDecoded >= 30, JSON.stringify(last));
  await page.waitForFunction(() => {
    const playing = [...document.querySelectorAll('.wall .tile video')].filter((v) => v.videoWidth > 0 && v.currentTime > 0.5);
    return playing.length >= 2;
  }, null, { timeout: 20_000 });

  // Each slot names its venue (node · publisher), two links away, in venue-name order.
  const HALL_A = 'county · hall-a (whip)';
  const HALL_B = 'county · hall-b (whip)';
  const slotName = (i) => page.textContent(`.slot[data-slot="${i}"] .tile-name`);
  const slotShows = (i, name) => page.waitForFunction(([i, name]) => {
    const slot = document.querySelector(`.slot[data-slot="${i}"]`);
    const video = slot?.querySelector('video');
    return slot?.querySelector('.tile-name').textContent === name && video?.videoWidth > 0 && !video.paused;
  }, [i, name], { timeout: 10_000 });
  await slotShows(0, HALL_A);
  await slotShows(1, HALL_B);
  // The operator picks hall-b for the first slot: the two swap.
  await page.selectOption('.slot[data-slot="0"] .slot-pick', { label: HALL_B });
  await slotShows(0, HALL_B);
  await slotShows(1, HALL_A);
  // A 3×2 wall: six slots, the other four empty.
  assert.equal(await page.locator('.slot').count(), 6);
  for (const i of [2, 3, 4, 5]) assert.equal(await slotName(i), '');

  // Multi-picture reaches down the cascade: with one slot, hall-a is in none, so it stops
  // crossing the links; the county sends up one venue's video, not two.
  const countyVideo = async () => {
    const text = await (await fetch(`${county.url}/metrics`)).text();
    const count = (dir) => Number(new RegExp(`^yunshi_packets_total\\{direction="${dir}",kind="video"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return { in: count('in'), out: count('out') };
  };
  const upRatio = async (ms) => {
    const a = await countyVideo();
    await new Promise((r) => setTimeout(r, ms));
    const b = await countyVideo();
    return { in: b.in - a.in, out: b.out - a.out, ratio: (b.out - a.out) / Math.max(1, b.in - a.in) };
  };
  const both = await upRatio(3_000);
  await page.selectOption('#console-layout', '1x1');
  await slotShows(0, HALL_B);
  await new Promise((r) => setTimeout(r, 3_000));
  const one = await upRatio(3_000);
  console.log(`county video packets up/in: both venues shown ${JSON.stringify(both)}; one shown ${JSON.stringify(one)}`);
  assert.ok(both.in > 100 && both.ratio > 0.8, `both shown: ${JSON.stringify(both)}`);
  assert.ok(one.in > 100 && one.ratio < 0.65, `one shown: ${JSON.stringify(one)}`);

  // An official at the province in the web client: the console directs what its screen shows.
  const watching = await launchChromium({ media: 'denied' });
  try {
    const official = await createUser(province.url, tokens.province, 'official');
    const web = await watching.newPage();
    await joinViaDeepLink(web, province.url, { ...official, roomId: 'conf' });
    // Each county venue has a tile of its own, named after it.
    await web.waitForFunction(() => document.querySelectorAll('#grid .tile[data-node="county"]').length === 2,
      null, { timeout: 20_000 });
    const mainView = () => web.evaluate(() => [...document.querySelectorAll('#grid .tile.called')]
      .map((t) => `${t.dataset.venue}${t.classList.contains('locked') ? ' (locked)' : ''}`).sort());
    const waitMain = (want) => web.waitForFunction((want) => {
      const got = [...document.querySelectorAll('#grid .tile.called')]
        .map((t) => `${t.dataset.venue}${t.classList.contains('locked') ? ' (locked)' : ''}`).sort();
      return JSON.stringify(got) === JSON.stringify(want);
    }, want, { timeout: 10_000 }).catch(async (err) => {
      throw new Error(`main view ${JSON.stringify(await mainView())}, wanted ${JSON.stringify(want)}: ${err.message}`);
    });
    assert.deepEqual(await mainView(), []);
    // Roll call of the county: its venues come to the main view.
    await page.click('.node-row[data-node="county"] button[data-action="roll_call"]');
    await waitMain(['hall-a (whip)', 'hall-b (whip)']);
    assert.equal(await web.locator('#grid .tile.main').count(), 1, 'one of them across the top');
    // The province's screens in a 3×3 grid.
    await page.selectOption('.node-row[data-node="province"] select[data-action="layout"]', '3x3');
    await page.waitForSelector('#console-results li.ok[data-action="layout"][data-node="province"]', { timeout: 10_000 });
    await web.waitForFunction(() => {
      const grid = document.getElementById('grid');
      return grid.dataset.layout === '3x3' && grid.style.getPropertyValue('--cols') === '3';
    }, null, { timeout: 10_000 });
    // Lock on the county: every level answers, the view is locked; unlocked, the lock goes.
    await page.click('.node-row[data-node="county"] button[data-action="lock"]');
    for (const node of ['province', 'city', 'county']) {
      await page.waitForSelector(`#console-results li.ok[data-action="lock"][data-node="${node}"]`, { timeout: 10_000 });
    }
    await page.waitForSelector('#console-results li[data-action="view_locked"]', { timeout: 10_000 });
    await waitMain(['hall-a (whip) (locked)', 'hall-b (whip) (locked)']);
    await page.click('.node-row[data-node="county"] button[data-action="unlock"]');
    await waitMain(['hall-a (whip)', 'hall-b (whip)']);
  } finally {
    await watching.close();
  }

  // Mute the county venue: the county answers.
  await page.click('.node-row[data-node="county"] button[data-action="mute"]');
  await page.waitForSelector('#console-results li.ok[data-action="mute"][data-node="county"]', { timeout: 10_000 });
  // The venue's own node shows its audio muted (the WHIP venue is its room's publisher).
  const room = await request(county.url, 'GET', '/api/v1/rooms/conf', { token: tokens.county });
  const local = room.members.filter((m) => !m.name.startsWith('cascade:')).flatMap((m) => m.tracks)
    .filter((t) => t.kind === 'audio');
  assert.ok(local.length >= 1 && local.every((t) => t.muted), `county room: ${JSON.stringify(room.members)}`);


  // Kill the city: the console shows its link down within a few seconds, nothing below it.
  await city.kill();
  await page.waitForSelector('.node-row[data-node="city"] .state[data-state="down"]', { timeout: 5_000 });
  assert.equal(await page.$('.node-row[data-node="county"]'), null, 'no ghost county behind a down link');
}));
