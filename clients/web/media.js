// The local camera and microphone.

export const VIEWER_DENIED = 'Camera or microphone access was denied — you are joining as a viewer';
const VIEWER_NO_DEVICE = 'No camera or microphone was found — you are joining as a viewer';
const VIEWER_FAILED = 'Camera or microphone could not be started — you are joining as a viewer';

const VIDEO = { width: 640, height: 360 };

// Returns {stream, notice}: stream is null when we must join as a viewer, and notice is the
// text to show the user ('' when all went well). A missing camera still lets a microphone
// through, and the other way round.
export async function acquireLocalMedia() {
  if (!navigator.mediaDevices?.getUserMedia) return { stream: null, notice: VIEWER_FAILED };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true, video: VIDEO }), notice: '' };
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
    [{ video: VIDEO }, 'No microphone is available — you are joining with your camera only'],
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
