// Minimal REST client for the server's API (docs/api.md), used to set up tests.

import { randomBytes } from 'node:crypto';

export async function request(baseUrl, method, path, { token, body, expect } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(new URL(path, baseUrl), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (expect !== undefined ? res.status !== expect : !res.ok) {
    throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  }
  return text ? JSON.parse(text) : null;
}

export async function loginToken(baseUrl, username, password) {
  const data = await request(baseUrl, 'POST', '/api/v1/auth/login', { body: { username, password } });
  return data.token;
}

let roomCounter = 0;

// Creates a room with a unique name and returns it ({id, name, ...}).
export async function createRoom(baseUrl, token, name) {
  roomCounter += 1;
  const roomName = name || `test room ${process.pid}-${roomCounter}-${Date.now()}`;
  return request(baseUrl, 'POST', '/api/v1/rooms', { token, body: { name: roomName }, expect: 201 });
}

// Creates a user (admin token needed) with a random strong password; returns the
// credentials {username, password} for the login form.
export async function createUser(baseUrl, adminToken, name, role = 'user') {
  const password = randomBytes(18).toString('base64url');
  await request(baseUrl, 'POST', '/api/v1/users', { token: adminToken, body: { name, password, role }, expect: 201 });
  return { username: name, password };
}
