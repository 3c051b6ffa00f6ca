// Asks the server for no more of each received video than its tile shows: `set_quality`
// (docs/api.md) with the tile's height in device pixels, or `paused` while nobody can see
// it (tab in the background, tile scrolled away or not displayed). The server then forwards
// the simulcast stream that fits, so a 180-px tile never costs a 720p stream.
//
// A participant's height can be pinned (window.yunshi.setMaxHeight, for tests and
// benchmarks): the pin replaces the measured size until it is removed.

import { yunshi } from './yunshi.js';

const DEBOUNCE_MS = 300;        // layout settles (window resizes, grid reflows) before we ask
const MIN_CHANGE = 0.2;         // smaller size changes do not change which stream fits
const MAX_HEIGHT = 65535;       // the server reads max_height as a 16-bit number

const pins = new Map();         // participant id -> {height, maxTemporal}
const watchers = new Set();     // live QualityWatchers, told when a pin changes

// window.yunshi.setMaxHeight(participantId, height, maxTemporal?): pins that participant's
// video to `height` device pixels (and a temporal layer, if given) in this page, now and in
// later rooms; a null height goes back to the tile's measured size.
export function pinMaxHeight(participantId, height, maxTemporal) {
  if (height === null || height === undefined) pins.delete(participantId);
  else pins.set(participantId, { height: Math.min(MAX_HEIGHT, Math.max(0, Math.ceil(height))), maxTemporal });
  for (const watcher of watchers) watcher.pinChanged(participantId);
}
yunshi.setMaxHeight = pinMaxHeight;

export class QualityWatcher {
  // send(msg) sends one message on the conference socket.
  constructor(send) {
    this.send = send;
    this.entries = new Map();   // server track id -> {trackId, participantId, video, visible, sent, timer}
    this.resizeObserver = new ResizeObserver((records) => {
      for (const record of records) this.scheduleFor(record.target);
    });
    this.intersectionObserver = new IntersectionObserver((records) => {
      for (const record of records) {
        for (const entry of this.entriesOf(record.target)) entry.visible = record.isIntersecting;
        this.scheduleFor(record.target);
      }
    });
    this.onVisibilityChange = () => {
      for (const entry of this.entries.values()) this.schedule(entry);
    };
    // The intrinsic size arrives with the first frame and changes the shown height when
    // the video's aspect differs from the tile's (see shownHeight).
    this.onVideoResize = (event) => this.scheduleFor(event.target);
    document.addEventListener('visibilitychange', this.onVisibilityChange);
    watchers.add(this);
  }

  // Starts watching the <video> that shows a received video track, and tells the server
  // at once what it shows, so that the first frames forwarded already fit.
  watch(trackId, participantId, video) {
    const existing = this.entries.get(trackId);
    if (existing?.video === video) return;
    if (existing) this.unwatch(trackId);
    // A video already observed gets no fresh intersection report: take what is known.
    const sibling = this.entriesOf(video)[0];
    const entry = { trackId, participantId, video, visible: sibling?.visible ?? true, sent: null, timer: null };
    this.entries.set(trackId, entry);
    if (!sibling) {
      this.resizeObserver.observe(video);
      this.intersectionObserver.observe(video);
      video.addEventListener('resize', this.onVideoResize);
    }
    this.update(entry, { force: true });
  }

  unwatch(trackId) {
    const entry = this.entries.get(trackId);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.entries.delete(trackId);
    delete yunshi.quality[trackId];
    if (this.entriesOf(entry.video).length === 0) {
      this.resizeObserver.unobserve(entry.video);
      this.intersectionObserver.unobserve(entry.video);
      entry.video.removeEventListener('resize', this.onVideoResize);
    }
  }

  dispose() {
    for (const trackId of [...this.entries.keys()]) this.unwatch(trackId);
    this.resizeObserver.disconnect();
    this.intersectionObserver.disconnect();
    document.removeEventListener('visibilitychange', this.onVisibilityChange);
    watchers.delete(this);
  }

  pinChanged(participantId) {
    for (const entry of this.entries.values()) {
      if (entry.participantId === participantId) this.update(entry, { force: true });
    }
  }

  entriesOf(video) {
    return [...this.entries.values()].filter((entry) => entry.video === video);
  }

  scheduleFor(video) {
    for (const entry of this.entriesOf(video)) this.schedule(entry);
  }

  schedule(entry) {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.update(entry), DEBOUNCE_MS);
  }

  // What the tile needs now: {max_height, paused, max_temporal?}.
  wanted(entry) {
    const pin = pins.get(entry.participantId);
    const height = pin ? pin.height : shownHeight(entry.video);
    const paused = document.hidden || !entry.visible || height === 0;
    const wanted = { max_height: height, paused };
    if (pin?.maxTemporal !== undefined && pin?.maxTemporal !== null) wanted.max_temporal = pin.maxTemporal;
    return wanted;
  }

  update(entry, { force = false } = {}) {
    clearTimeout(entry.timer);
    entry.timer = null;
    if (this.entries.get(entry.trackId) !== entry) return;
    const wanted = this.wanted(entry);
    const sent = entry.sent;
    const heightChanged = !sent || (wanted.max_height === 0) !== (sent.max_height === 0) ||
      Math.abs(wanted.max_height - sent.max_height) > MIN_CHANGE * sent.max_height;
    if (!force && sent && !heightChanged && wanted.paused === sent.paused &&
      wanted.max_temporal === sent.max_temporal) return;
    // A tile with no size (not displayed) keeps the last height it asked for, so that it
    // resumes at that size.
    const msg = { type: 'set_quality', track_id: entry.trackId, paused: wanted.paused };
    const lastHeight = wanted.max_height || sent?.lastHeight || 0;
    if (lastHeight) msg.max_height = lastHeight;
    if (wanted.max_temporal !== undefined) msg.max_temporal = wanted.max_temporal;
    if (!this.send(msg)) return;   // socket not open: the next change tries again
    entry.sent = { ...wanted, lastHeight };
    yunshi.quality[entry.trackId] = { participantId: entry.participantId, ...msg };
  }
}

// The height of the picture on screen, in device pixels: the element's height, or less
// when the video is narrower than the element is tall (object-fit: contain bars it).
function shownHeight(video) {
  let height = video.clientHeight;
  if (video.videoWidth > 0 && video.videoHeight > 0) {
    height = Math.min(height, (video.clientWidth * video.videoHeight) / video.videoWidth);
  }
  return Math.min(MAX_HEIGHT, Math.ceil(height * (window.devicePixelRatio || 1)));
}
