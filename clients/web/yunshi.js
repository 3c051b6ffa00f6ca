// window.yunshi: what tests and benchmarks (tests/browser) may read from the page.
//
//   pcPublish, pcSubscribe  the current RTCPeerConnections (null when there is none)
//   participantId           our id in the room, from `joined` (null when not in a room)
//   localStream             our camera/microphone stream, if any
//   events                  {t, type, dir: 'send'|'recv'} for each signalling message, and
//                           {t, type: 'first_frame', participant} when a remote video's
//                           first frame is rendered; t is performance.now()
//   quality                 {<server track id>: {participantId, track_id, max_height?,
//                           paused, max_temporal?}}: the last set_quality sent per video
//   setMaxHeight(participantId, height, maxTemporal?)
//                           pins what we ask of that participant's video, overriding the
//                           tile's size (null height unpins); see quality.js
//
// Before joining, sessionStorage['yunshi.capture'] = JSON {width, height, layers} chooses
// the camera resolution and the number of simulcast layers (see media.js).

const MAX_EVENTS = 5000;

export const yunshi = {
  pcPublish: null,
  pcSubscribe: null,
  participantId: null,
  localStream: null,
  events: [],
  quality: {},
  setMaxHeight: null,   // set by quality.js
};
window.yunshi = yunshi;

export function recordEvent(event) {
  yunshi.events.push({ t: performance.now(), ...event });
  // Bounded, for long meetings: the oldest entries go first.
  if (yunshi.events.length > MAX_EVENTS) yunshi.events.splice(0, yunshi.events.length - MAX_EVENTS);
}
