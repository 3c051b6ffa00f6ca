// Real packet loss made by the kernel: a network namespace joined to the root namespace by a
// veth pair, and nftables rules inside it that drop a random share of the UDP datagrams
// to or from the server's media ports. This kernel has no netem; `numgen random` does it.
//
//   const reason = lossNamespaceUnavailable();   // null when root with `ip` and `nft`
//   const ns = await createLossNamespace();      // ns.hostIp (root side), ns.nsIp (inside)
//   const browser = await launchChromium({ executablePath: ns.chromiumWrapper });  // inside
//   ns.setLoss({ ports: server.udpPorts, down: 20 });  // 20 % of server → namespace dropped
//   ns.setLoss({ ports: server.udpPorts, up: 20 });    // 20 % of namespace → server dropped
//   ns.lossCounters()  // {down: {seen, dropped}, up: {seen, dropped}} since the last setLoss
//   ns.clearLoss(); ns.destroy();                // destroy() also runs when Node exits
//
// Addresses come from 198.18.0.0/15 (benchmarking range) only: the first 198.18.N.0/24 that
// no interface uses; the root side is .1, the namespace side .2.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHROMIUM } from './chromium.mjs';

const live = new Set();
process.on('exit', () => {
  for (const ns of live) ns.destroy();
});

function run(cmd, args, { input } = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr || err.message || '').trim()}`);
  }
}

function which(name) {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

// Why a loss namespace cannot be made here, or null if it can (root, `ip` and `nft` found).
export function lossNamespaceUnavailable() {
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces and nftables need it)';
  if (!which('ip')) return '`ip` (iproute2) not found';
  if (!which('nft')) return '`nft` (nftables) not found';
  return null;
}

function freeSubnet() {
  const used = run('ip', ['-4', '-o', 'addr', 'show']);
  for (let n = 0; n < 256; n++) {
    if (!used.includes(` 198.18.${n}.`)) return `198.18.${n}`;
  }
  throw new Error('no free 198.18.N.0/24 subnet');
}

export async function createLossNamespace() {
  const reason = lossNamespaceUnavailable();
  if (reason) throw new Error(`cannot create a loss namespace: ${reason}`);
  const id = `ysb${process.pid}`.slice(0, 11);
  const name = id;
  const vethHost = `${id}h`;
  const vethNs = `${id}n`;
  const subnet = freeSubnet();
  const hostIp = `${subnet}.1`;
  const nsIp = `${subnet}.2`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'yunshi-netns-'));
  const chromiumWrapper = path.join(dir, 'chromium-in-netns');
  let destroyed = false;

  const nsRun = (cmd, args, opts) => run('ip', ['netns', 'exec', name, cmd, ...args], opts);

  const ns = {
    name,
    hostIp,
    nsIp,
    vethHost,
    chromiumWrapper,

    // down/up: percent of the UDP datagrams from/to `ports` ([first, last]) dropped by
    // the namespace's input/output hook. Replaces any earlier rules; counters restart.
    setLoss({ ports, down = 0, up = 0 }) {
      const range = `${ports[0]}-${ports[1]}`;
      const rules = [
        'flush chain inet loss in',
        'flush chain inet loss out',
        // The first rule of each chain counts every datagram, the second the dropped ones.
        `add rule inet loss in udp sport ${range} counter`,
        `add rule inet loss out udp dport ${range} counter`,
      ];
      if (down > 0) rules.push(`add rule inet loss in udp sport ${range} numgen random mod 100 < ${Math.round(down)} counter drop`);
      if (up > 0) rules.push(`add rule inet loss out udp dport ${range} numgen random mod 100 < ${Math.round(up)} counter drop`);
      nsRun('nft', ['-f', '-'], { input: rules.join('\n') + '\n' });
    },

    // Cap the downlink (root side → namespace) at `downKbps` with a token bucket (tc tbf) on
    // the root end of the veth; 0 or none removes the cap. Queueing beyond 50 ms is dropped,
    // as a congested access link would.
    setRate({ downKbps = 0 } = {}) {
      if (!downKbps) {
        try { execFileSync('tc', ['qdisc', 'del', 'dev', vethHost, 'root'], { stdio: 'ignore' }); } catch { /* none */ }
        return;
      }
      // Burst: at least one full-size frame, else about 20 ms at the rate.
      const burst = Math.max(3000, Math.round((downKbps * 1000) / 8 * 0.02));
      run('tc', ['qdisc', 'replace', 'dev', vethHost, 'root', 'tbf', 'rate', `${downKbps}kbit`, 'burst', String(burst), 'latency', '50ms']);
    },

    clearLoss() {
      nsRun('nft', ['-f', '-'], { input: 'flush chain inet loss in\nflush chain inet loss out\n' });
    },

    // Datagrams seen and dropped by the rules since the last setLoss.
    lossCounters() {
      const json = JSON.parse(nsRun('nft', ['-j', 'list', 'table', 'inet', 'loss']));
      const out = { down: { seen: 0, dropped: 0 }, up: { seen: 0, dropped: 0 } };
      for (const item of json.nftables) {
        const rule = item.rule;
        if (!rule) continue;
        const dir = rule.chain === 'in' ? out.down : out.up;
        const counter = rule.expr.find((e) => e.counter)?.counter;
        if (!counter) continue;
        if (rule.expr.some((e) => 'drop' in e)) dir.dropped += counter.packets;
        else dir.seen += counter.packets;
      }
      return out;
    },

    ruleset() {
      return nsRun('nft', ['list', 'ruleset']);
    },

    destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(ns);
      // Deleting the namespace deletes its end of the veth, and with it the pair.
      try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); } catch { /* gone */ }
      try { execFileSync('ip', ['link', 'del', vethHost], { stdio: 'ignore' }); } catch { /* gone */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(ns);

  try {
    run('ip', ['netns', 'add', name]);
    run('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs]);
    run('ip', ['link', 'set', vethNs, 'netns', name]);
    run('ip', ['addr', 'add', `${hostIp}/24`, 'dev', vethHost]);
    run('ip', ['link', 'set', vethHost, 'up']);
    nsRun('ip', ['addr', 'add', `${nsIp}/24`, 'dev', vethNs]);
    nsRun('ip', ['link', 'set', vethNs, 'up']);
    nsRun('ip', ['link', 'set', 'lo', 'up']);
    nsRun('nft', ['-f', '-'], { input: [
      'add table inet loss',
      "add chain inet loss in { type filter hook input priority 0; }",
      "add chain inet loss out { type filter hook output priority 0; }",
    ].join('\n') + '\n' });
    // Playwright drives Chromium over a pipe (fds 3 and 4), which `ip netns exec` keeps.
    writeFileSync(chromiumWrapper, `#!/bin/sh\nexec ip netns exec ${name} ${CHROMIUM} "$@"\n`);
    chmodSync(chromiumWrapper, 0o755);
  } catch (err) {
    ns.destroy();
    throw err;
  }
  return ns;
}
