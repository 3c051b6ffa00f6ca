// The grid of remote participants: one tile per participant, holding a <video> (which
// also plays the audio) with data-participant="<id>", a name label and mute indicators.
// A cascade link (a participant named `cascade:<node>`) is one participant carrying every
// venue beyond it that this room watches: each venue gets a tile of its own, named after the
// venue the server says the tracks come from (`source`); the link's own tile shows only
// tracks of no known venue, and is hidden while it has none.

import { el } from './dom.js';

const ICON_MIC_OFF = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 3a3 3 0 0 0-3 3v5a3 3 0 0 0 5.1 2.1M15 10V6a3 3 0 0 0-5.8-1M5 11a7 7 0 0 0 11.5 5.4M19 11a7 7 0 0 1-.6 2.8M12 18v3M3 3l18 18"/></svg>';
const ICON_CAM_OFF = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 3l18 18M15 11l6-4v10l-3-2M13 17H5a2 2 0 0 1-2-2V9a2 2 0 0 1 2-2h2m4 0h2a2 2 0 0 1 2 2v2"/></svg>';

export class Tiles {
  constructor(grid, onFirstFrame, onPlayBlocked) {
    this.grid = grid;
    this.onFirstFrame = onFirstFrame;
    this.onPlayBlocked = onPlayBlocked;
    this.tiles = new Map();   // participant id -> tile state
  }

  // Creates the tile on first use; `name` may arrive later than the media.
  ensure(participantId, name) {
    let tile = this.tiles.get(participantId);
    if (!tile) {
      const video = el('video', { autoplay: true, playsInline: true, 'data-participant': participantId });
      video.setAttribute('playsinline', '');
      const label = el('span', { class: 'tile-name' });
      const micOff = el('span', { class: 'indicator mic-off', title: 'Microphone muted', hidden: true });
      micOff.innerHTML = ICON_MIC_OFF;
      const camOff = el('span', { class: 'indicator cam-off', title: 'Camera off', hidden: true });
      camOff.innerHTML = ICON_CAM_OFF;
      const avatar = el('span', { class: 'avatar' });
      const root = el('div', { class: 'tile', 'data-tile': participantId },
        video,
        el('div', { class: 'placeholder' }, avatar),
        el('div', { class: 'tile-label' }, label, micOff, camOff));
      tile = { id: participantId, name: '', root, video, label, avatar, micOff, camOff,
        stream: null, muted: { audio: false, video: false }, framed: new Set() };
      this.tiles.set(participantId, tile);
      this.grid.append(root);
      this.refresh(tile);
    }
    if (name) {
      tile.isLink = name.startsWith('cascade:');
      tile.name = name;
      tile.label.textContent = name;
      tile.avatar.textContent = [...name.trim()][0]?.toUpperCase() || '?';
      this.refresh(tile);
    }
    return tile;
  }

  has(participantId) {
    return this.tiles.has(participantId);
  }

  // Adds a received track to the participant's stream and (re)starts playback; returns the
  // <video> that shows it.
  addTrack(participantId, track, stream, info = {}) {
    let tile = this.ensure(participantId);
    if (tile.isLink && info.source) {
      tile = this.ensureVenue(participantId, info.source);
      stream = null;
    }
    // Which node and venue the tile shows, for direction from above (direction.js).
    if (info.source) {
      tile.root.dataset.node = info.source.node;
      tile.root.dataset.venue = info.source.participant;
    }
    if (!tile.stream) {
      tile.stream = stream || new MediaStream();
      tile.stream.addEventListener('addtrack', () => this.refresh(tile));
      tile.stream.addEventListener('removetrack', () => this.refresh(tile));
    }
    if (!tile.stream.getTrackById(track.id)) tile.stream.addTrack(track);
    if (tile.video.srcObject !== tile.stream) tile.video.srcObject = tile.stream;
    track.addEventListener('ended', () => this.removeTrack(participantId, track));
    track.addEventListener('unmute', () => this.refresh(tile));
    this.play(tile);
    if (track.kind === 'video') this.watchFirstFrame(tile, track);
    this.refresh(tile);
    return tile.video;
  }

  // A venue beyond a link: a tile keyed `<link id>/<node>/<publisher>`, whose <video> still
  // says which participant (the link) it belongs to.
  ensureVenue(linkId, source) {
    const key = `${linkId}/${source.node}/${source.participant}`;
    const fresh = !this.tiles.has(key);
    const tile = this.ensure(key, `${source.participant} · ${source.node}`);
    if (fresh) {
      tile.link = linkId;
      tile.video.dataset.participant = linkId;
    }
    return tile;
  }

  removeTrack(participantId, track) {
    for (const tile of [...this.tiles.values()]) {
      if (tile.id !== participantId && tile.link !== participantId) continue;
      if (!tile.stream?.getTrackById(track.id)) continue;
      tile.stream.removeTrack(track);
      if (tile.link && tile.stream.getTracks().length === 0) this.remove(tile.id);
      else this.refresh(tile);
    }
  }

  setMuted(participantId, kind, muted) {
    const tile = this.ensure(participantId);
    tile.muted[kind] = Boolean(muted);
    this.refresh(tile);
  }

  remove(participantId) {
    for (const venue of [...this.tiles.values()].filter((t) => t.link === participantId)) this.remove(venue.id);
    const tile = this.tiles.get(participantId);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.root.remove();
    this.tiles.delete(participantId);
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }

  highlight(participantId) {
    for (const tile of this.tiles.values()) tile.root.classList.toggle('speaking', tile.id === participantId);
  }

  refresh(tile) {
    const hasVideo = Boolean(tile.stream?.getVideoTracks().some((t) => t.readyState === 'live'));
    tile.root.classList.toggle('has-video', hasVideo && !tile.muted.video);
    tile.micOff.hidden = !tile.muted.audio;
    tile.camOff.hidden = !tile.muted.video;
    if (tile.isLink) tile.root.hidden = !tile.stream?.getTracks().length;
  }

  // Unmuted autoplay can be refused without a user gesture; then we play muted and offer
  // a button that turns the sound on.
  play(tile) {
    tile.video.play().catch((err) => {
      if (err.name !== 'NotAllowedError') return;
      tile.video.muted = true;
      tile.video.play().catch(() => {});
      this.onPlayBlocked();
    });
  }

  unmuteAll() {
    for (const tile of this.tiles.values()) {
      tile.video.muted = false;
      tile.video.play().catch(() => {});
    }
  }

  // Records when the first frame of each received video track is actually rendered.
  watchFirstFrame(tile, track) {
    if (tile.framed.has(track.id)) return;
    tile.framed.add(track.id);
    const report = () => this.onFirstFrame(tile.link || tile.id);
    if (typeof tile.video.requestVideoFrameCallback === 'function') {
      tile.video.requestVideoFrameCallback(report);
    } else {
      tile.video.addEventListener('loadeddata', report, { once: true });
    }
  }
}
