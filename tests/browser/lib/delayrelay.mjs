// A UDP relay that adds a fixed delay each way, for round-trip times this kernel cannot make
// (no netem). The server binds its media ports on 127.0.0.1 and announces `frontIp` in its
// ICE candidates; the relay listens on frontIp at the same port numbers and forwards every
// datagram to 127.0.0.1 after `oneWayMs`, and every reply back to its client after `oneWayMs`.
// Each client address gets its own socket towards the server, so the server sees distinct
// peers. ICE, DTLS and SRTP pass through untouched: the relay only moves datagrams.
//
//   const relay = await startDelayRelay({ frontIp: ns.hostIp, ports: [p, p + 1], oneWayMs: 25 });
//   relay.stats();   // { forwarded, returned }
//   relay.close();

import dgram from 'node:dgram';

export async function startDelayRelay({ frontIp, ports, oneWayMs, backIp = '127.0.0.1' }) {
  const sockets = [];
  const counts = { forwarded: 0, returned: 0 };
  const later = (fn) => (oneWayMs > 0 ? setTimeout(fn, oneWayMs) : fn());
  const bind = (socket, port, address) => new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => { socket.off('error', reject); resolve(); });
  });
  for (const port of ports) {
    const front = dgram.createSocket('udp4');
    sockets.push(front);
    const backs = new Map();
    front.on('message', async (msg, from) => {
      const key = `${from.address}:${from.port}`;
      let back = backs.get(key);
      if (!back) {
        back = dgram.createSocket('udp4');
        sockets.push(back);
        backs.set(key, back);
        back.on('message', (reply) => {
          later(() => { counts.returned++; front.send(reply, from.port, from.address); });
        });
        back.on('error', () => {});
        await bind(back, 0, backIp);
      }
      later(() => { counts.forwarded++; back.send(msg, port, backIp); });
    });
    front.on('error', () => {});
    await bind(front, port, frontIp);
  }
  return {
    stats: () => ({ ...counts }),
    close: () => { for (const s of sockets) { try { s.close(); } catch { /* closed */ } } },
  };
}
