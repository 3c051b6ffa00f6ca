// Yunshi web client, entry point: the three views (login, room list, room) and how the
// user moves between them. The protocol is in docs/api.md; the pieces live in
//   api.js (session, REST) · media.js (camera, microphone) · conference.js (socket and
//   peer connections) · simulcast.js (what we send) · quality.js (what we ask to receive)
//   · tiles.js (remote video grid) · yunshi.js (window.yunshi for tests)

import { $, el, setText } from './dom.js';
import { api, ApiError, clearSession, currentSession, login, setUnauthorizedHandler } from './api.js';
import { acquireLocalMedia, stopStream, trackOf } from './media.js';
import { Conference } from './conference.js';
import { Direction } from './direction.js';
import { Tiles } from './tiles.js';
import { recordEvent, yunshi } from './yunshi.js';

const ROOM_REFRESH_MS = 5000;
const CONNECTION_LOST = 'Connection to the server was lost';

let pendingRoom = new URLSearchParams(location.search).get('room');   // deep link /?room=<id>
let roomListTimer = null;
let currentRoom = null;   // id of the room whose view is shown, if any
let conference = null;    // the Conference of that room while connected
let localMedia = null;    // {stream, notice}: kept across rejoins, stopped on leave

// ---------------------------------------------------------------------------------------
// Views and banner
// ---------------------------------------------------------------------------------------

function showView(name) {
  for (const view of ['login', 'rooms', 'room']) $(`view-${view}`).hidden = view !== name;
  stopRoomListRefresh();
  const user = currentSession()?.user;
  $('whoami').hidden = !user;
  $('whoami').textContent = user?.name || '';
  $('logout').hidden = !currentSession();
  document.body.dataset.view = name;
}

function showBanner(text, actionLabel, action) {
  $('banner-text').textContent = text;
  const button = $('banner-action');
  button.textContent = actionLabel;
  button.onclick = () => {
    hideBanner();
    action();
  };
  $('banner').hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

function setRoomUrl(roomId) {
  const url = roomId ? `${location.pathname}?room=${encodeURIComponent(roomId)}` : location.pathname;
  history.replaceState(null, '', url);
}

// ---------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------

function showLogin(message) {
  hideBanner();
  showView('login');
  setText('login-error', message);
  $('login-password').value = '';
  $('login-submit').disabled = false;
  $('login-username').focus();
}

// Where to go once signed in: the deep-linked room, else the room list.
function afterSignIn() {
  if (pendingRoom) {
    const roomId = pendingRoom;
    pendingRoom = null;
    enterRoom(roomId);
  } else {
    showRooms();
  }
}

function signOut(message) {
  // After an expired token, come back to the same room once signed in again.
  if (currentRoom) pendingRoom = currentRoom;
  leaveConference();
  clearSession();
  showLogin(message);
}

async function submitLogin(event) {
  event.preventDefault();
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  if (!username || !password) {
    setText('login-error', 'Please enter your username and password');
    return;
  }
  $('login-submit').disabled = true;
  setText('login-error', '');
  try {
    await login(username, password);
    afterSignIn();
  } catch (err) {
    setText('login-error', err.status === 401 ? 'Wrong username or password'
      : err.status === 0 ? 'The server cannot be reached' : err.message);
  } finally {
    $('login-submit').disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Room list
// ---------------------------------------------------------------------------------------

function showRooms(message) {
  currentRoom = null;
  hideBanner();
  setRoomUrl(null);
  showView('rooms');
  setText('rooms-error', message);
  refreshRooms();
  roomListTimer = setInterval(refreshRooms, ROOM_REFRESH_MS);
}

function stopRoomListRefresh() {
  clearInterval(roomListTimer);
  roomListTimer = null;
}

async function refreshRooms() {
  let rooms;
  try {
    rooms = await api('GET', '/api/v1/rooms');
  } catch (err) {
    if (err.status === 0 && !$('view-rooms').hidden) showBanner(CONNECTION_LOST, 'Retry', refreshRooms);
    return;
  }
  if ($('view-rooms').hidden) return;   // left the view while the request was in flight
  hideBanner();
  renderRoomList(Array.isArray(rooms) ? rooms : rooms?.rooms || []);
}

// Updates entries in place rather than rebuilding the list, so that a click under way
// during the periodic refresh is not lost.
function renderRoomList(rooms) {
  const list = $('room-list');
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  rooms.sort((a, b) => (b.created_at || 0) - (a.created_at || 0) || String(a.name).localeCompare(b.name));
  rooms.forEach((room, index) => {
    let li = existing.get(room.id);
    existing.delete(room.id);
    if (!li) {
      const button = el('button', { type: 'button', class: 'room', 'data-room-id': room.id },
        el('span', { class: 'room-name' }),
        el('span', { class: 'room-meta' }));
      button.addEventListener('click', () => enterRoom(room.id));
      li = el('li', { 'data-id': room.id }, button);
    }
    const count = room.participants ?? 0;
    li.querySelector('.room-name').textContent = room.name || room.id;
    li.querySelector('.room-meta').textContent = `${count} participant${count === 1 ? '' : 's'}` +
      (room.created_by ? ` · created by ${room.created_by}` : '');
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
  });
  for (const li of existing.values()) li.remove();
  $('room-list-empty').hidden = rooms.length > 0;
}

async function submitCreateRoom(event) {
  event.preventDefault();
  const name = $('room-name').value.trim();
  if (!name) {
    setText('rooms-error', 'Please enter a room name');
    return;
  }
  $('room-create').disabled = true;
  try {
    await api('POST', '/api/v1/rooms', { name });
    $('room-name').value = '';
    setText('rooms-error', '');
    await refreshRooms();
  } catch (err) {
    if (err.status !== 401) setText('rooms-error', err.message);
  } finally {
    $('room-create').disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Room
// ---------------------------------------------------------------------------------------

const tiles = new Tiles($('grid'),
  (participant) => recordEvent({ type: 'first_frame', participant }),
  () => { $('enable-sound').hidden = false; });

// What a higher level of the cascade directs the grid to show (roll call, lock, layout).
let direction = new Direction($('grid'));

// Keeps the "waiting" hint, the column count and the main view in step with the tiles.
new MutationObserver(() => {
  const n = [...$('grid').children].filter((c) => !c.hidden).length;
  $('grid-empty').hidden = n > 0;
  direction.render();
}).observe($('grid'), { childList: true, subtree: true, attributeFilter: ['hidden', 'data-node'] });

async function enterRoom(roomId) {
  leaveConference({ keepMedia: true });
  hideBanner();
  currentRoom = roomId;
  direction = new Direction($('grid'));
  setRoomUrl(roomId);
  showView('room');
  $('room-title').textContent = roomId;
  setText('room-status', 'Joining…');
  setText('room-message', '');
  setText('media-notice', '');
  $('enable-sound').hidden = true;
  $('grid-empty').textContent = 'Waiting for others to join…';

  // Ask for the devices and check that the room exists at the same time.
  const [media, room] = await Promise.all([
    localMedia || acquireLocalMedia(),
    api('GET', `/api/v1/rooms/${encodeURIComponent(roomId)}`).catch((err) => err),
  ]);
  if (currentRoom !== roomId || !currentSession()) {
    // Left, or signed out, while we were waiting.
    if (media !== localMedia) stopStream(media.stream);
    return;
  }
  localMedia = media;
  yunshi.localStream = media.stream;
  if (room instanceof ApiError) {
    if (room.status === 401) return;   // api() went back to the login view
    if (room.status === 404) {
      stopLocalMedia();
      showRooms(`Room "${roomId}" does not exist`);
      return;
    }
    if (room.status === 0) {
      showLost(roomId);
      return;
    }
  } else if (room?.name) {
    $('room-title').textContent = room.name;
  }
  setText('media-notice', media.notice);
  showLocalPreview();
  updateControls();
  connect(roomId);
}

function connect(roomId) {
  const session = currentSession();
  conference = new Conference({
    roomId,
    token: session.token,
    name: session.user?.name,
    stream: localMedia?.stream || null,
    tiles,
    hooks: {
      onJoined(msg) {
        if (msg.room?.name) $('room-title').textContent = msg.room.name;
        updateParticipantCount();
      },
      onParticipants: updateParticipantCount,
      onLost: () => handleLost(roomId),
      onClosed(reason) {
        conference = null;
        stopLocalMedia();
        showRooms(`The room was closed${reason ? ` (${reason})` : ''}`);
      },
      onMessage: (text) => setText('room-message', text),
      onMuteRequested({ kind, muted, by }) {
        const device = kind === 'audio' ? 'microphone' : 'camera';
        if (muted) {
          const track = trackOf(localMedia?.stream, kind);
          if (track) track.enabled = false;
          updateControls();
          setText('room-message', `${by || 'The host'} turned off your ${device}`);
        } else {
          // Never switch a microphone or camera on remotely: the user decides.
          setText('room-message', `${by || 'The host'} asks you to turn on your ${device}`);
        }
      },
      onActiveSpeaker(participantId) {
        tiles.highlight(participantId);
        $('local').classList.toggle('speaking', participantId === yunshi.participantId);
      },
      // A higher level of the cascade directs the view (its console's roll call, lock, layout).
      onControl(msg) {
        const text = {
          roll_call: `Roll call: ${msg.venue}`,
          view_locked: `The view is locked on ${msg.venue}`,
          view_unlocked: 'The view is unlocked',
          layout: `Layout ${msg.layout}`,
        }[msg.type];
        setText('room-message', `${text} (${msg.by})`);
        direction.apply(msg);
      },
    },
  });
  conference.open();
}

function updateParticipantCount() {
  if (!conference) return;
  const n = conference.participants.size + 1;
  setText('room-status', `${n} participant${n === 1 ? '' : 's'}`);
}

// The socket dropped: find out why before offering to rejoin.
async function handleLost(roomId) {
  conference = null;
  setText('room-status', 'Disconnected');
  try {
    await api('GET', `/api/v1/rooms/${encodeURIComponent(roomId)}`);
  } catch (err) {
    if (err.status === 401) return;   // back at the login view already
    if (err.status === 404) {
      stopLocalMedia();
      showRooms('The room no longer exists');
      return;
    }
  }
  if (currentRoom === roomId) showLost(roomId);
}

function showLost(roomId) {
  setText('room-status', 'Disconnected');
  $('grid-empty').textContent = 'Not connected';
  showBanner(CONNECTION_LOST, 'Rejoin', () => enterRoom(roomId));
}

// Closes the conference (telling the server) and, unless kept for a rejoin, the devices.
function leaveConference({ keepMedia = false } = {}) {
  conference?.close();
  conference = null;
  currentRoom = null;
  if (!keepMedia) stopLocalMedia();
}

function stopLocalMedia() {
  stopStream(localMedia?.stream);
  localMedia = null;
  yunshi.localStream = null;
  $('local-video').srcObject = null;
}

function showLocalPreview() {
  const stream = localMedia?.stream || null;
  $('local').hidden = !stream?.getVideoTracks().length;
  if ($('local-video').srcObject !== stream) $('local-video').srcObject = stream;
}

function updateControls() {
  for (const [kind, id, onText, offText] of [
    ['audio', 'mute-audio', 'Mute mic', 'Unmute mic'],
    ['video', 'mute-video', 'Stop camera', 'Start camera'],
  ]) {
    const track = trackOf(localMedia?.stream, kind);
    const muted = Boolean(track && !track.enabled);
    const button = $(id);
    button.disabled = !track;
    button.textContent = muted ? offText : onText;
    button.setAttribute('aria-pressed', String(muted));
    button.classList.toggle('off', muted);
  }
  $('local').classList.toggle('video-off', !trackOf(localMedia?.stream, 'video')?.enabled);
}

function toggleLocal(kind) {
  const track = trackOf(localMedia?.stream, kind);
  if (!track) return;
  const muted = track.enabled;   // it is on, so this click turns it off
  if (conference) conference.setLocalMuted(kind, muted);
  else track.enabled = !muted;
  updateControls();
}

// ---------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------

setUnauthorizedHandler(() => signOut('Your session has expired — please sign in again'));
$('login-form').addEventListener('submit', submitLogin);
$('create-form').addEventListener('submit', submitCreateRoom);
$('logout').addEventListener('click', () => {
  leaveConference();
  pendingRoom = null;
  setRoomUrl(null);
  signOut('');
});
$('leave').addEventListener('click', () => {
  leaveConference();
  showRooms();
});
$('mute-audio').addEventListener('click', () => toggleLocal('audio'));
$('mute-video').addEventListener('click', () => toggleLocal('video'));
$('enable-sound').addEventListener('click', () => {
  tiles.unmuteAll();
  $('enable-sound').hidden = true;
});
window.addEventListener('pagehide', () => conference?.close());

if (currentSession()) afterSignIn();
else showLogin('');
