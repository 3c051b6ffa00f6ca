// Launches the system Chromium (never a downloaded one) headless, with a fake camera and
// microphone and a fresh profile.
//
//   const browser = await launchChromium();            // media allowed
//   const browser = await launchChromium({ media: 'denied' });
//   const page = await browser.newPage(); ... await browser.close();

import { mkdtemp, rm } from 'node:fs/promises';
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
export async function launchChromium({ media = 'fake' } = {}) {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'yunshi-chromium-'));
  const args = [...COMMON_FLAGS, '--use-fake-device-for-media-stream'];
  if (media === 'fake') args.push('--use-fake-ui-for-media-stream');
  else if (media === 'denied') args.push('--deny-permission-prompts');
  else throw new Error(`unknown media mode ${media}`);

  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    permissions: media === 'fake' ? ['camera', 'microphone'] : [],
    viewport: { width: 1000, height: 700 },
  });
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
