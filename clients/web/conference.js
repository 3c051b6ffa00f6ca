// One stay in a room: the conference WebSocket and the two peer connections (docs/api.md).
//
//   - publish:   we offer our camera/microphone (sendonly; the camera as VP8 simulcast,
//                simulcast.js), the server answers;
//   - subscribe: the server offers the other participants' tracks, we answer, and it
//                renegotiates on the same connection whenever tracks come or go.
// Each connection has a single offerer, so negotiations never collide; all received
// messages still go through one promise queue so that two renegotiations never interleave.
// A Conference is used once: after close() (or a lost connection) a new one is made.

import { captureSettings } from './media.js';
import { QualityWatcher } from './quality.js';
import { addVideoTransceiver, restoreSingleLayer, setActiveLayers } from './simulcast.js';
import { recordEvent, yunshi } from './yunshi.js';

const PING_INTERVAL_MS = 15000;
const CONNECT_TIMEOUT_MS = 10000;

// Maps each m-line's mid to the `a=msid:<participant_id> <track_id>` it carries, so that a
// received track can be matched to the server's track id (browsers may give remote tracks
// ids of their own).
function parseMsids(sdp) {
  const byMid = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
    const msid = /^a=msid:(\S+) (\S+)/m.exec(section);
    if (mid && msid) byMid.set(mid, { participantId: msid[1], trackId: msid[2] });
  }
  return byMid;
}

export class Conference {
  // token, name: who we are; stream: our camera/microphone, or null to join as a viewer;
  // tiles: the Tiles grid; hooks: the room view's callbacks: onJoined(msg), onParticipants(),
  // onLost(conference), onClosed(reason), onMessage(text), onMuteRequested(msg),
  // onActiveSpeaker(participantId), onControl(msg) (roll call, view lock, layout from above).
  constructor({ roomId, token, name, stream, tiles, hooks }) {
    this.roomId = roomId;
    this.token = token;
    this.name = name;
    this.stream = stream;
    this.tiles = tiles;
    this.hooks = hooks;
    this.participants = new Map();   // id -> {id, name, role, tracks: Map(trackId -> {kind, muted, source})}
    this.remoteTracks = new Map();   // server track id -> {participantId, track}
    this.msids = new Map();          // mid -> {participantId, trackId}
    this.queue = Promise.resolve();
    this.closed = false;
    this.joined = false;
    this.pcPublish = null;
    this.pcSubscribe = null;
    this.videoTransceiver = null;   // of the publish connection
    this.quality = new QualityWatcher((msg) => this.send(msg));
  }

  open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/api/v1/rooms/${encodeURIComponent(this.roomId)}/ws` +
      `?token=${encodeURIComponent(this.token)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.connectTimer = setTimeout(() => { if (!this.joined) this.lost(); }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      this.send({ type: 'join', name: this.name, role: this.stream ? 'speaker' : 'attendee' });
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_INTERVAL_MS);
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn('ignoring a message that is not JSON', event.data);
        return;
      }
      recordEvent({ type: msg.type, dir: 'recv' });
      this.queue = this.queue
        .then(() => this.closed || this.handle(msg))
        .catch((err) => {
          console.error(`handling ${msg.type} failed`, err);
          this.hooks.onMessage(`Error while handling "${msg.type}": ${err.message || err}`);
        });
    };
    ws.onclose = () => this.lost();
  }

  send(msg) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    recordEvent({ type: msg.type, dir: 'send' });
    return true;
  }

  // The socket dropped (or never opened) while we still wanted to be in the room.
  lost() {
    if (this.closed) return;
    this.close({ sendLeave: false });
    this.hooks.onLost(this);
  }

  // Tears everything down; the local stream belongs to the caller and is left running.
  close({ sendLeave = true } = {}) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    clearInterval(this.pingTimer);
    if (sendLeave) this.send({ type: 'leave' });
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    }
    this.pcPublish?.close();
    this.pcSubscribe?.close();
    this.quality.dispose();
    if (yunshi.pcPublish === this.pcPublish) yunshi.pcPublish = null;
    if (yunshi.pcSubscribe === this.pcSubscribe) yunshi.pcSubscribe = null;
    if (yunshi.participantId === this.participantId) yunshi.participantId = null;
    this.tiles.clear();
  }

  // Track and participant events may be about ourselves (the server confirms our own
  // tracks); only other participants get a tile.
  isSelf(participantId) {
    return participantId === this.participantId;
  }

  async handle(msg) {
    switch (msg.type) {
      case 'joined': return this.onJoined(msg);
      case 'publish_answer':
        if (!this.pcPublish) return;
        await this.pcPublish.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        return restoreSingleLayer(this.videoTransceiver);
      case 'subscribe_offer': return this.onSubscribeOffer(msg);
      case 'publish_layers': return setActiveLayers(this.pcPublish, msg.mid, msg.active);
      case 'participant_joined': return this.addParticipant(msg.participant);
      case 'participant_left': return this.removeParticipant(msg.participant_id);
      case 'track_published': return this.onTrackPublished(msg.track);
      case 'track_unpublished': return this.onTrackUnpublished(msg);
      case 'track_source': return this.onTrackSource(msg);
      case 'track_muted': return this.onTrackMuted(msg);
      case 'mute_requested': return this.hooks.onMuteRequested(msg);
      case 'active_speaker': return this.hooks.onActiveSpeaker(msg.participant_id);
      // Control from a higher level of a cascaded conference (docs/api.md, Cascade).
      case 'roll_call':
      case 'view_locked':
      case 'view_unlocked':
      case 'layout':
        return this.hooks.onControl?.(msg);
      case 'room_closed':
        this.close({ sendLeave: false });
        return this.hooks.onClosed(msg.reason);
      case 'error':
        return this.hooks.onMessage(msg.message || msg.error || 'The server reported an error');
      case 'pong': return;
      default:
        console.debug('unhandled message', msg);
    }
  }

  async onJoined(msg) {
    this.joined = true;
    clearTimeout(this.connectTimer);
    yunshi.participantId = msg.participant_id;
    this.participantId = msg.participant_id;
    for (const participant of msg.participants || []) this.addParticipant(participant);
    this.hooks.onJoined(msg);
    if (this.stream) await this.publish();
  }

  // Offers our camera and microphone. The server is ICE-lite and answers with its host
  // candidate, so the offer goes out at once, without waiting for ICE gathering.
  async publish() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pcPublish = pc;
    yunshi.pcPublish = pc;
    this.watchConnection(pc, 'publish');
    for (const track of this.stream.getTracks()) {
      if (track.kind === 'video') {
        const { layers, codec } = captureSettings();
        this.videoTransceiver = addVideoTransceiver(pc, track, this.stream, layers, codec);
      } else {
        pc.addTransceiver(track, { direction: 'sendonly', streams: [this.stream] });
      }
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: 'publish_offer', sdp: pc.localDescription.sdp });
    // Tell the server about tracks that were muted before we joined (or before a rejoin).
    for (const track of this.stream.getTracks()) {
      if (!track.enabled) this.send({ type: 'mute', kind: track.kind, muted: true });
    }
  }

  async onSubscribeOffer(msg) {
    if (!this.pcSubscribe) {
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pcSubscribe = pc;
      yunshi.pcSubscribe = pc;
      this.watchConnection(pc, 'subscribe');
      pc.ontrack = (event) => this.onTrack(event);
    }
    const pc = this.pcSubscribe;
    // Parse before applying: ontrack fires while setRemoteDescription runs.
    this.msids = parseMsids(msg.sdp);
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: 'subscribe_answer', sdp: pc.localDescription.sdp });
  }

  onTrack(event) {
    if (this.closed) return;
    const fromSdp = this.msids.get(event.transceiver?.mid);
    const participantId = event.streams[0]?.id || fromSdp?.participantId;
    if (!participantId || participantId === '-' || this.isSelf(participantId)) return;
    const trackId = fromSdp?.trackId || event.track.id;
    this.remoteTracks.set(trackId, { participantId, track: event.track });
    this.tiles.ensure(participantId, this.participants.get(participantId)?.name);
    // The element that shows this track (a participant's tile here; the console's wall has a
    // tile per video track, since a cascade link is one participant carrying many venues).
    const video = this.tiles.addTrack(participantId, event.track, event.streams[0],
      { trackId, source: this.participants.get(participantId)?.tracks.get(trackId)?.source });
    // Tells the server at once what the tile shows: it knows the track from its own offer.
    if (event.track.kind === 'video') this.quality.watch(trackId, participantId, video);
  }

  watchConnection(pc, label) {
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && !this.closed) {
        console.warn(`${label} connection failed`);
        this.lost();
      }
    });
  }

  addParticipant(p) {
    if (!p?.id || this.isSelf(p.id)) return;
    const tracks = new Map((p.tracks || []).map((t) => [t.id, { kind: t.kind, muted: Boolean(t.muted), source: t.source }]));
    this.participants.set(p.id, { id: p.id, name: p.name || p.id, role: p.role, tracks });
    // Receive-only attendees get no tile (a webinar can have many); they count in the header.
    if (p.role !== 'attendee' || tracks.size > 0 || this.tiles.has(p.id)) {
      this.tiles.ensure(p.id, p.name || p.id);
      for (const track of tracks.values()) if (track.muted) this.tiles.setMuted(p.id, track.kind, true);
    }
    this.hooks.onParticipants();
  }

  removeParticipant(participantId) {
    if (this.isSelf(participantId)) return;
    this.participants.delete(participantId);
    for (const [trackId, entry] of this.remoteTracks) {
      if (entry.participantId !== participantId) continue;
      this.remoteTracks.delete(trackId);
      this.quality.unwatch(trackId);
    }
    this.tiles.remove(participantId);
    this.hooks.onParticipants();
  }

  onTrackPublished(track) {
    if (!track || this.isSelf(track.participant_id)) return;
    const p = this.participants.get(track.participant_id);
    p?.tracks.set(track.id, { kind: track.kind, muted: Boolean(track.muted), source: track.source });
    this.tiles.ensure(track.participant_id, p?.name);
    this.tiles.setMuted(track.participant_id, track.kind, Boolean(track.muted));
  }

  onTrackUnpublished({ track_id: trackId, participant_id: participantId }) {
    if (this.isSelf(participantId)) return;
    this.participants.get(participantId)?.tracks.delete(trackId);
    const entry = this.remoteTracks.get(trackId);
    if (entry) {
      this.remoteTracks.delete(trackId);
      this.quality.unwatch(trackId);
      this.tiles.removeTrack(entry.participantId, entry.track);
    }
  }

  // Which venue a track of a cascade link comes from (`source`), when the link said so late.
  onTrackSource({ track_id: trackId, participant_id: participantId, source }) {
    const track = this.participants.get(participantId)?.tracks.get(trackId);
    if (track) track.source = source;
    this.tiles.setSource?.(trackId, source);
  }

  onTrackMuted({ track_id: trackId, participant_id: participantId, kind, muted }) {
    if (this.isSelf(participantId)) return;
    const track = this.participants.get(participantId)?.tracks.get(trackId);
    if (track) track.muted = Boolean(muted);
    if (this.tiles.has(participantId)) this.tiles.setMuted(participantId, kind, muted);
  }

  // Before the publish offer is out the server has no track to mute; publish() then sends
  // the state of each track itself.
  setLocalMuted(kind, muted) {
    const track = this.stream?.getTracks().find((t) => t.kind === kind);
    if (!track) return;
    track.enabled = !muted;
    if (this.pcPublish) this.send({ type: 'mute', kind, muted });
  }
}
