// Reads a page's RTCPeerConnection statistics, and waits for media to flow.
//
// `pcPath` names the connection as a property path from `window`, for example
// 'yunshi.pcSubscribe' (the web client's subscribe connection) or 'whep.pc'.

// Sums over all inbound-rtp streams of the connection, and lists them one by one.
export async function inboundStats(page, pcPath) {
  return page.evaluate(async (pcPath) => {
    const pc = pcPath.split('.').reduce((obj, key) => obj?.[key], window);
    const total = {
      connected: pc?.connectionState === 'connected',
      framesDecoded: 0,
      totalSamplesReceived: 0,
      concealedSamples: 0,
      video: [],
      audio: [],
    };
    if (!pc || pc.connectionState === 'closed') return total;
    const report = await pc.getStats();
    for (const s of report.values()) {
      if (s.type !== 'inbound-rtp') continue;
      if (s.kind === 'video') {
        total.framesDecoded += s.framesDecoded || 0;
        total.video.push({ mid: s.mid, trackIdentifier: s.trackIdentifier, framesDecoded: s.framesDecoded || 0,
          packetsReceived: s.packetsReceived || 0, frameWidth: s.frameWidth, frameHeight: s.frameHeight,
          codec: report.get(s.codecId)?.mimeType });
      } else if (s.kind === 'audio') {
        total.totalSamplesReceived += s.totalSamplesReceived || 0;
        total.concealedSamples += s.concealedSamples || 0;
        total.audio.push({ mid: s.mid, trackIdentifier: s.trackIdentifier,
          totalSamplesReceived: s.totalSamplesReceived || 0, concealedSamples: s.concealedSamples || 0,
          packetsReceived: s.packetsReceived || 0 });
      }
    }
    return total;
  }, pcPath);
}

// The connection's transport as the browser reports it: {dtlsState, dtlsRole, srtpCipher,
// tlsVersion}, or null before it has one.
export async function transportStats(page, pcPath) {
  return page.evaluate(async (pcPath) => {
    const pc = pcPath.split('.').reduce((obj, key) => obj?.[key], window);
    if (!pc) return null;
    for (const s of (await pc.getStats()).values()) {
      if (s.type === 'transport') {
        return { dtlsState: s.dtlsState, dtlsRole: s.dtlsRole, srtpCipher: s.srtpCipher, tlsVersion: s.tlsVersion };
      }
    }
    return null;
  }, pcPath);
}

// The received video of the web client's subscribe connection (the first one decoding, else
// the first one): for pages that receive a single remote video.
export async function receivedVideo(page) {
  const stats = await inboundStats(page, 'yunshi.pcSubscribe');
  return stats.video.find((v) => v.framesDecoded > 0) || stats.video[0] || null;
}

// The video streams a connection sends, one per simulcast layer: [{rid, bytesSent,
// frameWidth, frameHeight, framesEncoded, qualityLimitationReason, active}], by rid.
export async function outboundVideoStats(page, pcPath) {
  return page.evaluate(async (pcPath) => {
    const pc = pcPath.split('.').reduce((obj, key) => obj?.[key], window);
    if (!pc || pc.connectionState === 'closed') return [];
    const streams = [];
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
      streams.push({ rid: s.rid, ssrc: s.ssrc, bytesSent: s.bytesSent || 0, frameWidth: s.frameWidth,
        frameHeight: s.frameHeight, framesEncoded: s.framesEncoded || 0, active: s.active,
        qualityLimitationReason: s.qualityLimitationReason, encoderImplementation: s.encoderImplementation,
        scalabilityMode: s.scalabilityMode });
    }
    return streams.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
  }, pcPath);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `read()` until `done(value)` holds; throws with the last value after `timeoutMs`.
export async function pollUntil(read, done, { timeoutMs, intervalMs = 200, what = 'condition' }) {
  const deadline = Date.now() + timeoutMs;
  let value;
  for (;;) {
    value = await read();
    if (done(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(value)}`);
    }
    await sleep(intervalMs);
  }
}

// Waits for the first decoded video frame (up to `firstFrameMs`, which covers ICE, DTLS and
// the first key frame), then requires `minFrames` more frames within `windowMs`.
// Returns {first, last} stats.
export async function expectVideoFlowing(page, pcPath, { minFrames = 50, windowMs = 10_000, firstFrameMs = 20_000 } = {}) {
  const first = await pollUntil(() => inboundStats(page, pcPath), (s) => s.framesDecoded > 0,
    { timeoutMs: firstFrameMs, what: `a first decoded video frame on ${pcPath}` });
  const last = await pollUntil(() => inboundStats(page, pcPath),
    (s) => s.framesDecoded - first.framesDecoded >= minFrames,
    { timeoutMs: windowMs, what: `${minFrames} more decoded video frames on ${pcPath} (had ${first.framesDecoded})` });
  return { first, last };
}

// Waits until audio samples are arriving and keep arriving (grows twice).
export async function expectAudioFlowing(page, pcPath, { timeoutMs = 10_000 } = {}) {
  const first = await pollUntil(() => inboundStats(page, pcPath), (s) => s.totalSamplesReceived > 0,
    { timeoutMs, what: `received audio samples on ${pcPath}` });
  const last = await pollUntil(() => inboundStats(page, pcPath),
    (s) => s.totalSamplesReceived > first.totalSamplesReceived,
    { timeoutMs, what: `more received audio samples on ${pcPath} (had ${first.totalSamplesReceived})` });
  return { first, last };
}

// Samples a viewer's received video (`receivedVideo`) every `everyMs` for `forMs` from its first
// decoded frame: the heights seen, and the frames decoded in that time.
export async function sampleReceivedVideo(page, { forMs, everyMs = 250 }) {
  const first = await pollUntil(() => receivedVideo(page), (v) => v?.framesDecoded > 0,
    { timeoutMs: 20_000, what: 'a first decoded video frame' });
  const heights = [];
  let last = first;
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    last = await receivedVideo(page);
    heights.push(last?.frameHeight);
    await sleep(everyMs);
  }
  return { first, last, heights, decoded: last.framesDecoded - first.framesDecoded };
}
