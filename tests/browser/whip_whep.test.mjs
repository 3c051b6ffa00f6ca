// WHIP ingest and WHEP playback (docs/api.md), each done by a page's own WebRTC stack
// against the real server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRoom, loginToken } from './lib/api.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { printLogsOnFailure, startServer } from './lib/server.mjs';
import { expectVideoFlowing, transportStats } from './lib/stats.mjs';
import { playWhep, publishWhip } from './lib/whip.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a WHIP publisher is played back over WHEP', () => printLogsOnFailure(server, async () => {
  const token = await loginToken(server.url, 'admin', server.adminPassword);
  const room = await createRoom(server.url, token);

  // /healthz is a same-origin page that runs none of the web client's code.
  const publisher = await browser.newPage();
  await publisher.goto(`${server.url}/healthz`);
  const whip = await publishWhip(publisher, { roomId: room.id, token });
  assert.equal(whip.status, 201, `WHIP POST: ${JSON.stringify(whip)}`);
  assert.match(whip.contentType || '', /^application\/sdp/);
  assert.match(whip.location || '', new RegExp(`/whip/${room.id}/`));

  const player = await browser.newPage();
  await player.goto(`${server.url}/healthz`);
  const whep = await playWhep(player, { roomId: room.id, token });
  assert.equal(whep.status, 201, `WHEP POST: ${JSON.stringify(whep)}`);
  assert.match(whep.location || '', new RegExp(`/whep/${room.id}/`));

  const { first, last } = await expectVideoFlowing(player, 'whep.pc', { minFrames: 50, windowMs: 10_000 });
  console.log(`WHEP frames ${first.framesDecoded} -> ${last.framesDecoded}`);

  // Chromium offers AES-256-GCM first; the server (the DTLS server, the browser being the
  // client) picks AES-128-GCM for both connections: ten AES rounds a block, not fourteen.
  for (const [page, pc] of [[publisher, 'whip.pc'], [player, 'whep.pc']]) {
    const transport = await transportStats(page, pc);
    console.log(`${pc} transport: ${JSON.stringify(transport)}`);
    assert.equal(transport?.dtlsState, 'connected', `${pc}: ${JSON.stringify(transport)}`);
    assert.equal(transport.dtlsRole, 'client', `${pc}: ${JSON.stringify(transport)}`);
    assert.equal(transport.srtpCipher, 'SRTP_AEAD_AES_128_GCM', `${pc}: ${JSON.stringify(transport)}`);
  }

  for (const location of [whep.location, whip.location]) {
    const res = await fetch(new URL(location, server.url), {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200, `DELETE ${location}`);
  }
  await publisher.close();
  await player.close();
}));
