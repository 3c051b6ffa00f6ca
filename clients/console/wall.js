// The console's video wall: a tile per received *video track*, not per participant. A child
// node's link is one participant of the conference carrying every venue of its subtree that
// someone here watches; each of those venues gets its own tile. Audio plays from one hidden
// element per participant. Same interface as the web client's Tiles (tiles.js), which the
// Conference drives.

import { el } from '/dom.js';

export class Wall {
  constructor(grid) {
    this.grid = grid;
    this.names = new Map();        // participant id -> name
    this.audio = new Map();        // participant id -> {element, stream}
    this.tiles = new Map();        // video track id -> {root, video, participantId, track}
  }

  ensure(participantId, name) {
    if (name) this.names.set(participantId, name);
    return { video: null };
  }

  has(participantId) {
    return this.names.has(participantId);
  }

  label(participantId) {
    const name = this.names.get(participantId) || participantId;
    const n = [...this.tiles.values()].filter((t) => t.participantId === participantId).length;
    return n ? `${name} · ${n + 1}` : name;
  }

  addTrack(participantId, track) {
    if (track.kind === 'audio') {
      let a = this.audio.get(participantId);
      if (!a) {
        a = { element: el('audio', { autoplay: true }), stream: new MediaStream() };
        a.element.srcObject = a.stream;
        this.audio.set(participantId, a);
      }
      a.stream.addTrack(track);
      a.element.play().catch(() => {});
      return null;
    }
    const video = el('video', { autoplay: true, muted: true, playsInline: true, 'data-participant': participantId });
    video.srcObject = new MediaStream([track]);
    const root = el('div', { class: 'tile has-video', 'data-tile': participantId, 'data-track': track.id },
      video, el('div', { class: 'tile-label' }, el('span', { class: 'tile-name' }, this.label(participantId))));
    this.tiles.set(track.id, { root, video, participantId, track });
    this.grid.append(root);
    video.play().catch(() => {});
    track.addEventListener('ended', () => this.removeTrack(participantId, track));
    return video;
  }

  removeTrack(participantId, track) {
    const t = this.tiles.get(track.id);
    if (t) {
      t.video.srcObject = null;
      t.root.remove();
      this.tiles.delete(track.id);
    }
    this.audio.get(participantId)?.stream.removeTrack(track);
  }

  setMuted() {}

  remove(participantId) {
    for (const t of [...this.tiles.values()]) {
      if (t.participantId === participantId) this.removeTrack(participantId, t.track);
    }
    const a = this.audio.get(participantId);
    if (a) {
      a.element.srcObject = null;
      this.audio.delete(participantId);
    }
    this.names.delete(participantId);
  }

  clear() {
    for (const id of [...this.names.keys(), ...this.audio.keys()]) this.remove(id);
    for (const t of [...this.tiles.values()]) this.removeTrack(t.participantId, t.track);
  }

  highlight(participantId) {
    for (const t of this.tiles.values()) t.root.classList.toggle('speaking', t.participantId === participantId);
  }
}
