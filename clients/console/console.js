// The command-centre console (docs/api.md, Cascade): the cascade tree below this node with the
// health of every link and the controls a higher level has over the venues below (mute, roll
// call, lock, end), and a video wall of the conference's venues, each slot picked by venue
// name (wall.js). A wall can span screens: "Open another screen" opens the same console in a
// new window, which the operator drags to the next monitor; its slots start with the venues
// after this window's (`from`). `?tiles=a|b|…` names the venue (as the pickers show it) each
// slot starts with.

import { api, currentSession, login, setUnauthorizedHandler, clearSession } from '/api.js';
import { Conference } from '/conference.js';
import { $, el } from '/dom.js';
import { Wall } from '/console/wall.js';

const POLL_MS = 1000;
const params = new URLSearchParams(location.search);
let lastTree = '';
let conference = null;
let tiles = null;

function showLogin(message = '') {
  $('console-main').hidden = true;
  $('console-login').hidden = false;
  $('console-login-error').textContent = message;
}

function showMain() {
  $('console-login').hidden = true;
  $('console-main').hidden = false;
  $('console-room').value = params.get('room') || $('console-room').value;
  const cols = params.get('cols');
  if (cols) $('console-layout').value = /^\d+$/.test(cols) ? `${cols}x${cols}` : cols;
  setLayout();
  pollTree();
  if (params.get('room')) watch();
}

$('console-login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await login($('console-username').value.trim(), $('console-password').value);
    showMain();
  } catch (err) {
    $('console-login-error').textContent = err.message;
  }
});

setUnauthorizedHandler(() => {
  clearSession();
  showLogin('Your session has ended; please sign in again');
});

// ---- the tree ----

const ACTIONS = [
  ['mute', 'Mute', () => ({ type: 'mute' })],
  ['unmute', 'Unmute', () => ({ type: 'mute', muted: false })],
  ['roll_call', 'Roll call', (node) => ({ type: 'roll_call', venue: node })],
  ['lock', 'Lock', (node) => ({ type: 'lock', venue: node })],
  ['unlock', 'Unlock', () => ({ type: 'unlock' })],
  ['end', 'End', () => ({ type: 'end' })],
];

const LAYOUTS = ['auto', '1+5', '2x2', '3x3', '4x4'];

function nodeRow(name, state, rttMs) {
  const badge = el('span', { class: `state state-${state}`, 'data-state': state }, state);
  const row = el('div', { class: 'node-row', 'data-node': name }, el('span', { class: 'node-name' }, name), badge);
  if (rttMs !== undefined && rttMs !== null) row.append(el('span', { class: 'rtt' }, `${rttMs.toFixed(1)} ms`));
  for (const [key, label, action] of ACTIONS) {
    const b = el('button', { type: 'button', 'data-action': key }, label);
    // Roll call and lock name a venue; the command itself goes to every node ("*").
    const target = key === 'roll_call' || key === 'lock' || key === 'unlock' ? '*' : name;
    b.addEventListener('click', () => command(target, action(name), `${label} ${name}`));
    row.append(b);
  }
  // That level's screens: their grid's shape.
  const layout = el('select', { 'data-action': 'layout', 'aria-label': `Layout of ${name}` },
    el('option', { value: '' }, 'Layout…'),
    ...LAYOUTS.map((l) => el('option', { value: l }, l)));
  layout.addEventListener('change', () => {
    if (layout.value) command(name, { type: 'layout', layout: layout.value }, `Layout ${layout.value} at ${name}`);
    layout.value = '';
  });
  row.append(layout);
  return row;
}

function renderChildren(children) {
  const ul = el('ul');
  for (const c of children || []) {
    const li = el('li', {}, nodeRow(c.node, c.state, c.rtt_ms));
    if (c.children?.length) li.append(renderChildren(c.children));
    ul.append(li);
  }
  return ul;
}

function render(view) {
  $('console-node').textContent = view.node;
  $('console-parent').textContent = view.parent
    ? `above: ${view.parent.node || view.parent.url} (${view.parent.state})` : 'top of the cascade';
  const tree = $('console-tree');
  tree.replaceChildren();
  const root = el('li', {}, nodeRow(view.node, 'up'));
  root.append(renderChildren(view.children));
  tree.append(root);
}

// Only what changes the picture re-renders it (not every heartbeat's figures), so a button
// is never replaced under the operator's pointer.
function digest(view) {
  const strip = (n) => ({ node: n.node, state: n.state, children: (n.children || []).map(strip) });
  return JSON.stringify({ node: view.node, parent: view.parent?.state, children: view.children.map(strip) });
}

async function pollTree() {
  try {
    const view = await api('GET', '/api/v1/cascade');
    const d = digest(view);
    if (d !== lastTree) {
      lastTree = d;
      render(view);
    }
  } catch (err) {
    if (err.status === 401) return;
  }
  setTimeout(pollTree, POLL_MS);
}

async function command(target, action, label) {
  const room = $('console-room').value.trim();
  if (!room) {
    log(`${label}: choose a room first`, false);
    return;
  }
  try {
    const r = await api('POST', '/api/v1/cascade/commands', { target, room, action });
    for (const n of r.results) log(`${label} → ${n.node}: ${n.ok ? 'ok' : n.error}`, n.ok, action.type, n.node);
  } catch (err) {
    log(`${label}: ${err.message}`, false, action.type);
  }
}

function log(text, ok, action = '', node = '') {
  const li = el('li', { class: ok ? 'ok' : 'failed', 'data-action': action, 'data-node': node }, text);
  $('console-results').prepend(li);
}

// ---- the wall ----

// The wall's shape, "<columns>x<rows>".
function shape() {
  const m = /^(\d+)x(\d+)$/.exec($('console-layout').value);
  return m ? { cols: Number(m[1]), rows: Number(m[2]) } : { cols: 2, rows: 2 };
}

function setLayout() {
  if (tiles) tiles.setShape(shape());
  else Wall.shapeGrid($('console-wall'), shape());
}

$('console-layout').addEventListener('change', setLayout);

function watch() {
  const room = $('console-room').value.trim();
  if (!room) return;
  conference?.close();
  $('console-wall').replaceChildren();
  document.querySelector('.wall-pool')?.remove();
  tiles = new Wall($('console-wall'), {
    ...shape(),
    from: Number(params.get('from')) || 0,
    wanted: params.get('tiles')?.split('|') || [],
  });
  const session = currentSession();
  conference = new Conference({
    roomId: room,
    token: session.token,
    name: `console:${session.user?.name || 'operator'}`,
    stream: null,
    tiles,
    hooks: {
      onJoined() {},
      onParticipants() {},
      onLost() { setTimeout(watch, 2000); },
      onClosed(reason) { log(`the conference ended (${reason})`, false); },
      onMessage(text) { log(text, false); },
      onMuteRequested() {},
      onActiveSpeaker(id) { tiles.highlight(id); },
      onControl(msg) { log(`${msg.type.replace('_', ' ')} ${msg.venue || msg.layout || ''} (${msg.by})`, true, msg.type); },
    },
  });
  conference.open();
}

$('console-watch').addEventListener('click', watch);
$('console-screen').addEventListener('click', () => {
  const next = new URL(location.href);
  next.searchParams.set('room', $('console-room').value.trim());
  const { cols, rows } = shape();
  next.searchParams.set('cols', `${cols}x${rows}`);
  next.searchParams.set('from', (Number(params.get('from')) || 0) + cols * rows);
  next.searchParams.delete('tiles');
  window.open(next, '_blank', 'popup');
});

if (currentSession()) showMain();
else showLogin();
