// A two-person call across a loss namespace (lib/netns.mjs), for loss.test.mjs and
// bench-loss/run.mjs. The server listens on the root side of the veth (ns.hostIp, HTTP and
// media); page `outside` runs in a Chromium in the root namespace, page `inside` in a
// Chromium inside the namespace. Both publish camera and microphone and subscribe to the
// other, so the namespace's input rule degrades what `inside` receives (downlink) and its
// output rule what `outside` receives from `inside` (uplink).
//
//   const call = await startLossCall({ capture: { width: 640, height: 360, layers: 2 },
//                                      serverEnv: { YUNSHI_VIDEO_FEC: 'always' } });
//   call.ns.setLoss({ ports: call.server.udpPorts, down: 20 });
//   await receiverSnapshot(call.inside); await senderSnapshot(call.outside);
//   await call.close();   // browsers, server, namespace; safe to call after a failure

import { createRoom, createUser, loginToken } from './api.mjs';
import { launchChromium } from './chromium.mjs';
import { startDelayRelay } from './delayrelay.mjs';
import { createLossNamespace } from './netns.mjs';
import { startServer } from './server.mjs';
import { pollUntil } from './stats.mjs';
import { joinViaDeepLink } from './ui.mjs';

// rttMs > 0: media goes through lib/delayrelay.mjs, adding rttMs / 2 each way for both pages.
export async function startLossCall({ capture, serverEnv = {}, rttMs = 0 } = {}) {
  const call = { ns: null, server: null, relay: null, browsers: [], token: null, outside: null, inside: null };
  call.close = async () => {
    for (const b of call.browsers) await b.close().catch(() => {});
    call.relay?.close();
    await call.server?.stop().catch(() => {});
    call.ns?.destroy();
  };
  try {
    call.ns = await createLossNamespace();
    const mediaBind = rttMs > 0 ? '127.0.0.1' : call.ns.hostIp;
    call.server = await startServer({ host: call.ns.hostIp, publicIp: call.ns.hostIp, mediaBind, env: serverEnv });
    if (rttMs > 0) {
      const ports = Array.from({ length: call.server.workers }, (_, i) => call.server.udpPort + i);
      call.relay = await startDelayRelay({ frontIp: call.ns.hostIp, ports, oneWayMs: rttMs / 2 });
    }
    const { server } = call;
    call.token = await loginToken(server.url, 'admin', server.adminPassword);
    const room = await createRoom(server.url, call.token);
    const users = [await createUser(server.url, call.token, 'outside'), await createUser(server.url, call.token, 'inside')];
    // Plain HTTP on an address other than loopback is no secure context: no getUserMedia.
    const secureOrigins = [server.url];
    const outsideBrowser = await launchChromium({ capture, secureOrigins });
    call.browsers.push(outsideBrowser);
    const insideBrowser = await launchChromium({ capture, secureOrigins, executablePath: call.ns.chromiumWrapper });
    call.browsers.push(insideBrowser);
    call.outside = await outsideBrowser.newPage();
    call.inside = await insideBrowser.newPage();
    call.outsideId = await joinViaDeepLink(call.outside, server.url, { ...users[0], roomId: room.id });
    call.insideId = await joinViaDeepLink(call.inside, server.url, { ...users[1], roomId: room.id });
    // No loss yet: ICE and DTLS complete, and both sides decode video and play audio.
    for (const page of [call.outside, call.inside]) {
      await pollUntil(() => receiverSnapshot(page), (s) => s.video.framesDecoded > 0 && s.audio.totalSamplesReceived > 0,
        { timeoutMs: 30_000, intervalMs: 250, what: `video and audio received by ${page === call.inside ? 'inside' : 'outside'}` });
    }
    return call;
  } catch (err) {
    if (call.server) err.message += `\n--- yunshi output ---\n${call.server.logs()}`;
    await call.close();
    throw err;
  }
}

// The subscribe connection's received video (the stream that decodes, else the first one)
// and audio, as the raw cumulative counters of getStats().
export async function receiverSnapshot(page) {
  return page.evaluate(async () => {
    const pc = window.yunshi?.pcSubscribe;
    const snap = { t: performance.now(), state: pc?.connectionState ?? 'none', video: {}, audio: {} };
    if (!pc || pc.connectionState === 'closed') return snap;
    const videos = [];
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'inbound-rtp') continue;
      const pick = (keys) => Object.fromEntries(keys.map((k) => [k, s[k] ?? 0]));
      if (s.kind === 'video') {
        videos.push({ ...pick(['framesDecoded', 'framesReceived', 'bytesReceived', 'framesDropped', 'framesPerSecond', 'frameHeight', 'frameWidth',
          'freezeCount', 'totalFreezesDuration', 'pauseCount', 'totalPausesDuration', 'packetsReceived', 'packetsLost',
          'nackCount', 'pliCount', 'firCount', 'keyFramesDecoded', 'retransmittedPacketsReceived', 'fecPacketsReceived', 'fecPacketsDiscarded',
          'jitterBufferDelay', 'jitterBufferEmittedCount']), mid: s.mid });
      } else if (s.kind === 'audio') {
        snap.audio = pick(['totalSamplesReceived', 'concealedSamples', 'silentConcealedSamples', 'concealmentEvents',
          'packetsReceived', 'packetsLost', 'insertedSamplesForDeceleration', 'removedSamplesForAcceleration']);
      }
    }
    snap.video = videos.find((v) => v.framesDecoded > 0) || videos[0] || {};
    return snap;
  });
}

// The publish connection's video layers: [{rid, framesEncoded, frameHeight, framesPerSecond,
// ...}], and the audio packets sent.
export async function senderSnapshot(page) {
  return page.evaluate(async () => {
    const pc = window.yunshi?.pcPublish;
    const snap = { t: performance.now(), state: pc?.connectionState ?? 'none', layers: [], audioPacketsSent: 0 };
    if (!pc || pc.connectionState === 'closed') return snap;
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'outbound-rtp') continue;
      if (s.kind === 'audio') snap.audioPacketsSent += s.packetsSent || 0;
      else snap.layers.push({ rid: s.rid, framesEncoded: s.framesEncoded || 0, framesSent: s.framesSent || 0,
        frameHeight: s.frameHeight || 0, framesPerSecond: s.framesPerSecond || 0, packetsSent: s.packetsSent || 0,
        retransmittedPacketsSent: s.retransmittedPacketsSent || 0, nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
        qualityLimitationReason: s.qualityLimitationReason });
    }
    snap.layers.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
    return snap;
  });
}

// The server's NACK and PLI counters from /metrics: {nacks_rx, nacks_tx, plis_in, plis_out}.
export async function serverCounters(server, token) {
  const res = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) return null;
  const text = await res.text();
  const value = (re) => Number(re.exec(text)?.[1] ?? 0);
  return {
    nacks_rx: value(/^yunshi_nacks_total\{direction="rx"\} (\d+)/m),
    nacks_tx: value(/^yunshi_nacks_total\{direction="tx"\} (\d+)/m),
    plis_in: value(/^yunshi_plis_total\{direction="rx"\} (\d+)/m),
    plis_out: value(/^yunshi_plis_total\{direction="tx"\} (\d+)/m),
    fec_out: value(/^yunshi_packets_total\{direction="out",kind="fec"\} (\d+)/m),
  };
}
