// Drives the web client (clients/web) the way a person does: the login form, the room
// list, the buttons. Element ids are the client's contract with these tests.

const JOIN_TIMEOUT_MS = 20_000;

// Watches a page's load and returns a function that says what it left behind: requests still
// pending or failed, console errors, uncaught exceptions, and the resources that arrived. Once
// on CI the login form never appeared: the server had served seven of app.js's modules and
// never got asked for the other two, and the failure said nothing more.
function watchLoad(page) {
  const pending = new Set();
  const seen = [];
  page.on('request', (r) => pending.add(r.url()));
  page.on('requestfinished', (r) => pending.delete(r.url()));
  page.on('requestfailed', (r) => {
    pending.delete(r.url());
    seen.push(`request failed: ${r.url()} (${r.failure()?.errorText})`);
  });
  page.on('console', (m) => { if (m.type() === 'error') seen.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
  return async () => {
    const arrived = await page.evaluate(() => performance.getEntriesByType('resource')
      .map((e) => `${new URL(e.name).pathname} (${Math.round(e.duration)} ms)`)).catch((e) => [`unreadable: ${e.message}`]);
    return [...seen, `pending: ${[...pending].join(', ') || 'none'}`, `arrived: ${arrived.join(', ')}`].join('\n');
  };
}

// Fills and submits the login form on a page that shows it; `loadReport` (from watchLoad)
// goes into the error if the form never shows.
export async function fillLogin(page, username, password, loadReport) {
  try {
    await page.locator('#login-username').fill(username);
  } catch (err) {
    if (loadReport) err.message += `\n--- the page's load ---\n${await loadReport()}`;
    throw err;
  }
  await page.locator('#login-password').fill(password);
  await page.locator('#login-submit').click();
}

// Opens the client, signs in and clicks the room in the room list.
export async function joinViaRoomList(page, baseUrl, { username, password, roomId }) {
  const loadReport = watchLoad(page);
  await page.goto(`${baseUrl}/`);
  await fillLogin(page, username, password, loadReport);
  await page.locator(`#room-list [data-room-id="${roomId}"]`).click({ timeout: 15_000 });
  return waitJoined(page);
}

// Opens the deep link /?room=<id>, signs in, and the client joins the room directly.
export async function joinViaDeepLink(page, baseUrl, { username, password, roomId }) {
  const loadReport = watchLoad(page);
  await page.goto(`${baseUrl}/?room=${encodeURIComponent(roomId)}`);
  await fillLogin(page, username, password, loadReport);
  return waitJoined(page);
}

// Joins like joinViaDeepLink, but first pins one participant's video (the client's
// setMaxHeight: height, and optionally the highest temporal layer), so that the very first
// set_quality, sent as the track arrives before the subscribe answer, already asks for it.
export async function joinPinned(page, baseUrl, { username, password, roomId }, { participantId, height, temporal }) {
  const loadReport = watchLoad(page);
  await page.goto(`${baseUrl}/?room=${encodeURIComponent(roomId)}`);
  await page.waitForFunction(() => typeof window.yunshi?.setMaxHeight === 'function');
  await page.evaluate(({ id, h, t }) => window.yunshi.setMaxHeight(id, h, t), { id: participantId, h: height, t: temporal });
  await fillLogin(page, username, password, loadReport);
  await waitJoined(page);
}

// Resolves to the participant id once the server has answered `join` with `joined`.
export async function waitJoined(page) {
  const handle = await page.waitForFunction(() => window.yunshi?.participantId, null,
    { timeout: JOIN_TIMEOUT_MS });
  return handle.jsonValue();
}

// Resolves once the page has a tile with a <video> for that participant.
export async function waitForTile(page, participantId, { timeout = 15_000 } = {}) {
  await page.locator(`#grid video[data-participant="${participantId}"]`).waitFor({ state: 'attached', timeout });
}

export async function events(page) {
  return page.evaluate(() => window.yunshi.events);
}
