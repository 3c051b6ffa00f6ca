// Drives the web client (clients/web) the way a person does: the login form, the room
// list, the buttons. Element ids are the client's contract with these tests.

const JOIN_TIMEOUT_MS = 20_000;

// Fills and submits the login form on a page that shows it.
export async function fillLogin(page, username, password) {
  await page.locator('#login-username').fill(username);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-submit').click();
}

// Opens the client, signs in and clicks the room in the room list.
export async function joinViaRoomList(page, baseUrl, { username, password, roomId }) {
  await page.goto(`${baseUrl}/`);
  await fillLogin(page, username, password);
  await page.locator(`#room-list [data-room-id="${roomId}"]`).click({ timeout: 15_000 });
  return waitJoined(page);
}

// Opens the deep link /?room=<id>, signs in, and the client joins the room directly.
export async function joinViaDeepLink(page, baseUrl, { username, password, roomId }) {
  await page.goto(`${baseUrl}/?room=${encodeURIComponent(roomId)}`);
  await fillLogin(page, username, password);
  return waitJoined(page);
}

// Joins like joinViaDeepLink, but first pins one participant's video (the client's
// setMaxHeight: height, and optionally the highest temporal layer), so that the very first
// set_quality, sent as the track arrives before the subscribe answer, already asks for it.
export async function joinPinned(page, baseUrl, { username, password, roomId }, { participantId, height, temporal }) {
  await page.goto(`${baseUrl}/?room=${encodeURIComponent(roomId)}`);
  await page.waitForFunction(() => typeof window.yunshi?.setMaxHeight === 'function');
  await page.evaluate(({ id, h, t }) => window.yunshi.setMaxHeight(id, h, t), { id: participantId, h: height, t: temporal });
  await fillLogin(page, username, password);
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
