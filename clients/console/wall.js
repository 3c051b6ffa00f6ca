// The console's video wall: N×M slots, each showing one received video track ("feed") that the
// operator picks by venue name. A child node's link is one participant of the conference
// carrying every venue of its subtree; the server names each track's venue (`source`:
// node and publisher, however many links away), and that name is what a slot's picker lists.
//
// A feed in no slot waits in a hidden pool: its <video> is not displayed, so the quality
// watcher pauses it, the server stops forwarding it, and the pause travels down the cascade
// (the venue stops crossing links nobody else needs it on). Picking it again resumes it.
//
// Empty slots fill themselves with feeds in venue-name order, skipping the first `from` (a
// second screen opened from the console starts where the first one's slots end), or with the
// venue named for that slot (`wanted`). A slot the operator set keeps its choice.
//
// Same interface as the web client's Tiles (tiles.js), which the Conference drives.

import { el } from '/dom.js';

export function venueLabel(source, fallback) {
  return source ? `${source.node} · ${source.participant}` : fallback;
}

export class Wall {
  constructor(grid, { cols = 2, rows = 2, from = 0, wanted = [] } = {}) {
    this.grid = grid;
    this.from = from;
    this.wanted = wanted;
    this.names = new Map();        // participant id -> name
    this.audio = new Map();        // participant id -> {element, stream}
    this.feeds = new Map();        // server track id -> {trackId, participantId, track, video, source}
    this.slots = [];               // {root, screen, name, pick, trackId, pinned}
    this.pool = el('div', { class: 'wall-pool', hidden: true });
    grid.after(this.pool);
    this.setShape({ cols, rows });
  }

  static shapeGrid(grid, { cols, rows }) {
    grid.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    grid.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
    grid.dataset.shape = `${cols}x${rows}`;
  }

  // ---- the interface the Conference drives ----

  ensure(participantId, name) {
    if (name) this.names.set(participantId, name);
    return { video: null };
  }

  has(participantId) {
    return this.names.has(participantId);
  }

  addTrack(participantId, track, stream, info = {}) {
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
    const trackId = info.trackId || track.id;
    const video = el('video', { autoplay: true, muted: true, playsInline: true, 'data-participant': participantId });
    video.srcObject = new MediaStream([track]);
    this.pool.append(video);
    this.feeds.set(trackId, { trackId, participantId, track, video, source: info.source });
    track.addEventListener('ended', () => this.removeTrack(participantId, track));
    this.changed();
    return video;
  }

  removeTrack(participantId, track) {
    for (const [trackId, feed] of this.feeds) {
      if (feed.track !== track) continue;
      const slot = this.slots.find((s) => s.trackId === trackId);
      if (slot) {
        slot.trackId = null;
        slot.pinned = false;
      }
      feed.video.srcObject = null;
      feed.video.remove();
      this.feeds.delete(trackId);
    }
    this.audio.get(participantId)?.stream.removeTrack(track);
    this.changed();
  }

  setSource(trackId, source) {
    const feed = this.feeds.get(trackId);
    if (!feed) return;
    feed.source = source;
    this.changed();
  }

  setMuted() {}

  remove(participantId) {
    for (const feed of [...this.feeds.values()]) {
      if (feed.participantId === participantId) this.removeTrack(participantId, feed.track);
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
    for (const feed of [...this.feeds.values()]) this.removeTrack(feed.participantId, feed.track);
  }

  highlight(participantId) {
    for (const s of this.slots) {
      s.root.classList.toggle('speaking', this.feeds.get(s.trackId)?.participantId === participantId);
    }
  }

  // ---- slots ----

  setShape({ cols, rows }) {
    Wall.shapeGrid(this.grid, { cols, rows });
    const count = cols * rows;
    while (this.slots.length > count) {
      const slot = this.slots.pop();
      this.unplace(slot);
      slot.root.remove();
    }
    while (this.slots.length < count) this.slots.push(this.newSlot(this.slots.length));
    this.changed();
  }

  newSlot(index) {
    const pick = el('select', { class: 'slot-pick', 'aria-label': `Slot ${index + 1}` });
    const name = el('span', { class: 'tile-name' });
    const screen = el('div', { class: 'slot-screen' });
    const root = el('div', { class: 'tile slot', 'data-slot': index, 'data-track': '' },
      screen, el('div', { class: 'tile-label' }, name, pick));
    const slot = { root, screen, name, pick, trackId: null, pinned: false };
    pick.addEventListener('change', () => {
      slot.pinned = true;
      if (pick.value) this.place(slot, pick.value);
      else this.unplace(slot);
      this.changed();
    });
    this.grid.append(root);
    return slot;
  }

  label(feed) {
    const base = venueLabel(feed.source, this.names.get(feed.participantId) || feed.participantId);
    const same = [...this.feeds.values()].filter((f) =>
      venueLabel(f.source, this.names.get(f.participantId) || f.participantId) === base);
    return same.length > 1 ? `${base} (${feed.trackId})` : base;
  }

  sortedFeeds() {
    return [...this.feeds.values()].sort((a, b) => this.label(a).localeCompare(this.label(b)));
  }

  place(slot, trackId) {
    const feed = this.feeds.get(trackId);
    if (!feed || slot.trackId === trackId) return;
    const elsewhere = this.slots.find((s) => s.trackId === trackId);
    if (elsewhere) {
      elsewhere.trackId = null;
      elsewhere.pinned = false;
    }
    this.unplace(slot);
    slot.trackId = trackId;
    slot.screen.append(feed.video);
    feed.video.play().catch(() => {});
  }

  unplace(slot) {
    const feed = this.feeds.get(slot.trackId);
    if (feed) this.pool.append(feed.video);
    slot.trackId = null;
  }

  // Fill empty slots, then redraw every slot's name and picker.
  changed() {
    const placed = new Set(this.slots.map((s) => s.trackId).filter(Boolean));
    const order = this.sortedFeeds();
    this.slots.forEach((slot, i) => {
      if (slot.trackId || slot.pinned) return;
      const wanted = this.wanted[i];
      const feed = wanted
        ? order.find((f) => !placed.has(f.trackId) && this.label(f) === wanted)
        : order.slice(this.from).find((f) => !placed.has(f.trackId) && !this.wanted.includes(this.label(f)));
      if (feed) {
        this.place(slot, feed.trackId);
        placed.add(feed.trackId);
      }
    });
    for (const slot of this.slots) {
      const feed = this.feeds.get(slot.trackId);
      slot.root.dataset.track = slot.trackId || '';
      slot.root.classList.toggle('has-video', Boolean(feed));
      slot.name.textContent = feed ? this.label(feed) : '';
      slot.pick.replaceChildren(el('option', { value: '' }, '—'),
        ...order.map((f) => el('option', { value: f.trackId, selected: f.trackId === slot.trackId }, this.label(f))));
      slot.pick.value = slot.trackId || '';
    }
  }
}
