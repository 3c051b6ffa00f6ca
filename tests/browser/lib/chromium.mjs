// Launches the system Chromium (never a downloaded one) headless, with a fake camera and
// microphone and a fresh profile.
//
//   const browser = await launchChromium();            // media allowed
//   const browser = await launchChromium({ media: 'denied' });
//   const browser = await launchChromium({ capture: { width: 640, height: 360, layers: 2 } });
//   const page = await browser.newPage(); ... await browser.close();

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const COMMON_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

// media: 'fake'   — a fake camera and microphone, permission granted without a prompt;
//        'denied' — the devices exist but every permission prompt is refused, as when a
//                   user clicks "Block".
// capture: {width, height, layers} for the web client's camera and simulcast (see
//        clients/web/media.js); defaults to the YUNSHI_CAPTURE variable (the same JSON),
//        else the client's own default (1280×720, 3 layers).
// executablePath: what Playwright starts instead of CHROMIUM, e.g. a wrapper script that runs
//        it in a network namespace (lib/netns.mjs).
// secureOrigins: origins other than loopback (e.g. 'http://198.18.0.1:8080') that Chromium
//        treats as secure, so that getUserMedia works on them over plain HTTP.
export async function launchChromium({ media = 'fake', capture = captureFromEnv(), executablePath = CHROMIUM,
  secureOrigins = [] } = {}) {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'yunshi-chromium-'));
  const args = [...COMMON_FLAGS, '--use-fake-device-for-media-stream'];
  if (secureOrigins.length) args.push(`--unsafely-treat-insecure-origin-as-secure=${secureOrigins.join(',')}`);
  if (media === 'fake') args.push('--use-fake-ui-for-media-stream');
  else if (media === 'denied') args.push('--deny-permission-prompts');
  else throw new Error(`unknown media mode ${media}`);
  // Pages answered by route.fulfill() have no address, and Chromium would then refuse
  // their connections to the loopback server.
  if (process.env.YUNSHI_WEB_DIR) args.push('--disable-features=LocalNetworkAccessChecks');
  if (process.env.YUNSHI_CHROMIUM_ARGS) args.push(...process.env.YUNSHI_CHROMIUM_ARGS.split(' ').filter(Boolean));

  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args,
    permissions: media === 'fake' ? ['camera', 'microphone'] : [],
    viewport: { width: 1000, height: 700 },
  });
  if (process.env.YUNSHI_WEB_DIR) await serveWebFromDisk(context, process.env.YUNSHI_WEB_DIR);
  if (capture) await setCapture(context, capture);
  const consoleErrors = [];

  return {
    context,
    // Console errors of every page, for tests that want a clean console.
    consoleErrors,
    async newPage() {
      const page = await context.newPage();
      page.on('console', (msg) => {
        if (msg.type() === 'error') consoleErrors.push(`${page.url()}: ${msg.text()}`);
      });
      page.on('pageerror', (err) => consoleErrors.push(`${page.url()}: ${err.message}`));
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

function captureFromEnv() {
  const text = process.env.YUNSHI_CAPTURE;
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`YUNSHI_CAPTURE is not JSON: ${text}`);
  }
}

// The client reads sessionStorage['yunshi.capture'] when it opens the camera; an init
// script puts it there in every page before the client's code runs.
async function setCapture(context, capture) {
  await context.addInitScript((value) => {
    try {
      sessionStorage.setItem('yunshi.capture', value);
    } catch { /* about:blank and other opaque origins have no storage */ }
  }, JSON.stringify(capture));
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css' };

// The server embeds clients/web at build time. With YUNSHI_WEB_DIR=<dir> the browser takes
// the client's files from that folder instead, so a change to the client can be tried
// against an existing server binary without rebuilding it. Off by default.
async function serveWebFromDisk(context, dir) {
  await context.route(/^http:\/\/(?:127\.0\.0\.1|198\.1[89]\.\d+\.\d+):\d+\/([\w.-]*\.(html|js|mjs|css))?(\?.*)?$/, async (route) => {
    const name = new URL(route.request().url()).pathname.slice(1) || 'index.html';
    try {
      const body = await readFile(path.join(dir, name));
      await route.fulfill({ body, contentType: MIME[path.extname(name)] });
    } catch {
      await route.continue();
    }
  });
}
