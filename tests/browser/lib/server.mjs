// Starts the yunshi binary as a child process on free loopback ports with a fresh data
// directory, and stops it again.
//
//   const server = await startServer();
//   server.url, server.adminPassword, server.pid, server.logs(), await server.stop()

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const YUNSHI_BIN = process.env.YUNSHI_BIN || path.resolve(HERE, '../../../target/debug/yunshi');

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_LOG_BYTES = 4 * 1024 * 1024;

// Servers still running when Node exits (a test crashed, Ctrl-C) are killed here.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => process.exit(130));
}

function freeTcpPort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function udpPortFree(port) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', () => resolve(false));
    sock.bind(port, '0.0.0.0', () => sock.close(() => resolve(true)));
  });
}

// The server binds `count` consecutive UDP ports (one per worker) starting at the base.
async function freeUdpRange(count) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (let port = base; port < base + count && ok; port++) ok = await udpPortFree(port);
    if (ok) return base;
  }
  throw new Error(`no range of ${count} free UDP ports found`);
}

async function waitHealthy(url, child, deadline) {
  let lastError = null;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`yunshi exited during startup (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
      lastError = new Error(`/healthz answered ${res.status}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`yunshi did not become healthy within ${STARTUP_TIMEOUT_MS / 1000} s: ${lastError?.message}`);
}

// host: the address HTTP listens on (and the url's host); publicIp: the address in ICE
// candidates (default: host); mediaBind: the address the media UDP sockets bind to (default:
// the server's own default); env: extra environment (YUNSHI_* settings). The defaults keep
// everything on loopback.
export async function startServer({ workers = os.availableParallelism(), host = '127.0.0.1', publicIp = host,
  mediaBind, env = {} } = {}) {
  if (!existsSync(YUNSHI_BIN)) {
    throw new Error(`server binary not found at ${YUNSHI_BIN} (build it, or set YUNSHI_BIN)`);
  }
  const httpPort = await freeTcpPort(host);
  // A little headroom above the workers in case the server binds one more socket.
  const udpPort = await freeUdpRange(workers + 2);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'yunshi-test-'));
  const adminPassword = randomBytes(18).toString('base64url');
  const url = `http://${host}:${httpPort}`;

  const child = spawn(YUNSHI_BIN, [
    '--http', `${host}:${httpPort}`,
    '--udp-port', String(udpPort),
    '--public-ip', publicIp,
    ...(mediaBind ? ['--media-bind', mediaBind] : []),
    '--data', dataDir,
  ], {
    env: { ...process.env, YUNSHI_ADMIN_PASSWORD: adminPassword, RUST_LOG: process.env.RUST_LOG || 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);

  // Keep the output (bounded) so a failing test can show what the server said.
  let log = '';
  const keep = (chunk) => {
    log += chunk.toString();
    if (log.length > MAX_LOG_BYTES) log = log.slice(-MAX_LOG_BYTES / 2);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  exited.then(() => running.delete(child));
  child.once('error', (err) => keep(`spawn error: ${err.message}\n`));

  let stopped = false;
  async function stop() {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    }
  }

  // Abrupt death, as when the machine or the process crashes.
  async function kill() {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  try {
    await waitHealthy(url, child, Date.now() + STARTUP_TIMEOUT_MS);
  } catch (err) {
    await stop();
    err.message += `\n--- yunshi output ---\n${log}`;
    throw err;
  }

  return {
    url,
    adminPassword,
    pid: child.pid,
    httpPort,
    udpPort,
    workers,
    // The UDP ports the media workers may use: [first, last].
    udpPorts: [udpPort, udpPort + workers + 1],
    dataDir,
    logs: () => log,
    stop,
    kill,
  };
}

// Runs `fn`; if it throws, prints the server's output before passing the error on.
export async function printLogsOnFailure(server, fn) {
  try {
    return await fn();
  } catch (err) {
    process.stderr.write(`\n--- yunshi output (${server.url}) ---\n${server.logs()}\n--- end of yunshi output ---\n`);
    throw err;
  }
}
