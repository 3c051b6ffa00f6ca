// The local camera and microphone.

export const VIEWER_DENIED = 'Camera or microphone access was denied — you are joining as a viewer';
const VIEWER_NO_DEVICE = 'No camera or microphone was found — you are joining as a viewer';
const VIEWER_FAILED = 'Camera or microphone could not be started — you are joining as a viewer';

// What the camera captures and how many simulcast layers we publish. 1280×720 with three
// layers by default; tests and benchmarks pick less (a 2-core machine cannot encode many
// 720p streams) by setting sessionStorage['yunshi.capture'] = '{"width":640,"height":360,
// "layers":2}' before joining. Chrome sends only as many layers as the resolution allows
// (640×360 → 2, 1280×720 → 3), so ask for no more than that.
// "codec" picks what the camera is sent as (see simulcast.js): 'vp8' (default) and 'h264' as
// simulcast, 'vp9' and 'av1' as SVC — one stream whose `layers` spatial layers the server
// hands out per viewer.
const CAPTURE_KEY = 'yunshi.capture';
const DEFAULT_CAPTURE = { width: 1280, height: 720, layers: 3, codec: 'vp8' };
const CODECS = ['vp8', 'h264', 'vp9', 'av1'];

export function captureSettings() {
  let stored = null;
  try {
    stored = JSON.parse(sessionStorage.getItem(CAPTURE_KEY));
  } catch { /* absent or corrupt: the defaults */ }
  const pick = (value, min, max, fallback) =>
    (Number.isInteger(value) && value >= min && value <= max ? value : fallback);
  return {
    width: pick(stored?.width, 16, 3840, DEFAULT_CAPTURE.width),
    height: pick(stored?.height, 16, 2160, DEFAULT_CAPTURE.height),
    layers: pick(stored?.layers, 1, 3, DEFAULT_CAPTURE.layers),
    codec: CODECS.includes(stored?.codec) ? stored.codec : DEFAULT_CAPTURE.codec,
  };
}

function videoConstraints() {
  const { width, height } = captureSettings();
  return { width, height };
}

// Returns {stream, notice}: stream is null when we must join as a viewer, and notice is the
// text to show the user ('' when all went well). A missing camera still lets a microphone
// through, and the other way round.
export async function acquireLocalMedia() {
  if (!navigator.mediaDevices?.getUserMedia) return { stream: null, notice: VIEWER_FAILED };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true, video: videoConstraints() }), notice: '' };
  } catch (err) {
    if (err.name === 'NotAllowedError' || err.name === 'SecurityError') {
      return { stream: null, notice: VIEWER_DENIED };
    }
    if (err.name !== 'NotFoundError' && err.name !== 'OverconstrainedError' && err.name !== 'NotReadableError') {
      console.warn('getUserMedia failed', err);
      return { stream: null, notice: VIEWER_FAILED };
    }
  }
  // One of the two devices is missing or busy: publish whichever one works.
  for (const [constraints, notice] of [
    [{ audio: true }, 'No camera is available — you are joining with your microphone only'],
    [{ video: videoConstraints() }, 'No microphone is available — you are joining with your camera only'],
  ]) {
    try {
      return { stream: await navigator.mediaDevices.getUserMedia(constraints), notice };
    } catch { /* try the next one */ }
  }
  return { stream: null, notice: VIEWER_NO_DEVICE };
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() || []) track.stop();
}

export function trackOf(stream, kind) {
  return stream?.getTracks().find((track) => track.kind === kind) || null;
}
