// The camera's sending side: VP8 simulcast (or H.264 simulcast, or VP9/AV1 SVC), so that the
// server can give each viewer the layer that fits its tile (set_quality, see quality.js)
// without asking us to re-encode.

// Lowest layer first: that order is what the server and Chrome expect of a=simulcast.
const ENCODINGS = {
  1: [{ maxBitrate: 1_500_000 }],
  2: [
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'f', maxBitrate: 1_500_000 },
  ],
  3: [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'f', maxBitrate: 1_500_000 },
  ],
};

// Three temporal layers per stream let the server lower a stream's frame rate too
// (max_temporal) by dropping frames nothing else refers to.
const SCALABILITY_MODE = 'L1T3';

// SVC codecs send one stream with spatial layers, each predicted from the one below only at
// keyframes (_KEY), so the server can drop the upper ones for a small tile at any time.
const SVC_CODECS = ['vp9', 'av1'];
const MIME = { vp8: 'video/vp8', h264: 'video/h264', vp9: 'video/vp9', av1: 'video/av1' };

// Adds a sendonly transceiver for the camera track with `layers` (1..3) simulcast streams or
// spatial layers, sent as `codec` ('vp8' unless told otherwise).
export function addVideoTransceiver(pc, track, stream, layers, codec = 'vp8') {
  if (SVC_CODECS.includes(codec)) return addSvcTransceiver(pc, track, stream, layers, codec);
  const encodings = ENCODINGS[layers] || ENCODINGS[3];
  const init = (extra) => ({
    direction: 'sendonly',
    streams: [stream],
    sendEncodings: encodings.map((encoding) => ({ ...encoding, ...extra })),
  });
  let transceiver;
  try {
    transceiver = pc.addTransceiver(track, init({ scalabilityMode: SCALABILITY_MODE }));
  } catch (err) {
    // Browsers without scalabilityMode support (or not for this codec) refuse the whole
    // call; simulcast without temporal layers is still worth having.
    console.info(`scalabilityMode ${SCALABILITY_MODE} refused (${err.name}); simulcast without it`);
    transceiver = pc.addTransceiver(track, init({}));
  }
  prefer(transceiver, codec);
  return transceiver;
}

function addSvcTransceiver(pc, track, stream, layers, codec) {
  const mode = layers > 1 ? `L${layers}T3_KEY` : 'L1T3';
  const encoding = { maxBitrate: ENCODINGS[1][0].maxBitrate };
  let transceiver;
  try {
    transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: [{ ...encoding, scalabilityMode: mode }] });
  } catch (err) {
    console.info(`scalabilityMode ${mode} refused (${err.name}); one layer`);
    transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: [encoding] });
  }
  prefer(transceiver, codec);
  return transceiver;
}

// The chosen codec first (VP8 by default: every browser simulcasts it, and the server's layer
// switching knows its picture ids and key frames). The others stay, in their order, as
// fallbacks. H.264 prefers packetization-mode=1 with the constrained-baseline profile.
function prefer(transceiver, codec) {
  if (typeof transceiver.setCodecPreferences !== 'function') return;
  const codecs = RTCRtpReceiver.getCapabilities?.('video')?.codecs || [];
  const mime = MIME[codec] || MIME.vp8;
  const rank = (c) => {
    if (c.mimeType.toLowerCase() !== mime) return 2;
    const fmtp = c.sdpFmtpLine || '';
    return codec === 'h264' && !(fmtp.includes('packetization-mode=1') && fmtp.includes('42e01f')) ? 1 : 0;
  };
  if (!codecs.some((c) => rank(c) < 2)) return;
  try {
    transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
  } catch (err) {
    console.info('setCodecPreferences failed; the browser picks the codec', err);
  }
}

// A server that does not accept simulcast leaves the sender with only the first encoding,
// which is the quarter-resolution one: send it at full size instead.
export async function restoreSingleLayer(transceiver) {
  const sender = transceiver?.sender;
  if (!sender) return;
  const params = sender.getParameters();
  const [only] = params.encodings || [];
  if (params.encodings?.length !== 1 || (only.scaleResolutionDownBy ?? 1) <= 1) return;
  only.scaleResolutionDownBy = 1;
  only.maxBitrate = ENCODINGS[1][0].maxBitrate;
  try {
    await sender.setParameters(params);
  } catch (err) {
    console.warn('could not restore the single video layer to full size', err);
  }
}

// The server says which simulcast encodings anyone receives (`publish_layers`): switch the
// others off, so the encoder spends no CPU and uplink on a 720p nobody watches. Encodings are
// matched by RID; an unknown RID is left as it is.
export async function setActiveLayers(pc, mid, activeRids) {
  const transceiver = pc?.getTransceivers().find((t) => t.mid === mid);
  const sender = transceiver?.sender;
  if (!sender) return;
  const params = sender.getParameters();
  if (!params.encodings?.length) return;
  let changed = false;
  for (const encoding of params.encodings) {
    if (!encoding.rid) continue;
    const active = activeRids.includes(encoding.rid);
    if (encoding.active !== active) {
      encoding.active = active;
      changed = true;
    }
  }
  if (!changed) return;
  try {
    await sender.setParameters(params);
  } catch (err) {
    console.warn('could not switch simulcast layers', err);
  }
}
