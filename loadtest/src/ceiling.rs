//! `yunshi-loadtest ceiling`: the raw limit of this machine per core, without any WebRTC
//! stack: one thread receives UDP datagrams (recvmmsg), decrypts each once (AES-128-GCM with
//! the 12-byte RTP header as associated data, as SRTP AEAD does), then for each of K viewers
//! encrypts a copy with that viewer's key and sends it (sendmmsg). That is all an SFU must do
//! per packet; everything else — ICE, DTLS, RTCP, NACK caches, layer selection — is overhead
//! on top of it. A feeder and a drain run on another core (`--tool-core`).
//!
//! Result: CPU time of the relaying thread per packet sent, and packets/s a full core would
//! send at that cost. Compare with yunshi's CPU per delivered packet from `ramp`.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use sfu::udp_batch::{self, RecvBatch, SendBatch};

use crate::worker::thread_cpu;

const HEADER: usize = 12;
const TAG: usize = 16;

pub struct Ceiling {
    pub viewers: usize,
    pub sent: u64,
    pub received: u64,
    pub cpu: Duration,
    pub seconds: f64,
}

impl Ceiling {
    pub fn us_per_packet(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.sent.max(1) as f64
    }

    pub fn table(&self) -> String {
        format!(
            "ceiling: 1 input stream → {} viewers, {:.0} s\n  packets in {}  out {} ({:.0}/s)\n  relaying thread CPU {:.2} s = {:.1} % of a core\n  CPU per packet out {:.2} µs → a full core would send {:.0} packets/s\n",
            self.viewers,
            self.seconds,
            self.received,
            self.sent,
            self.sent as f64 / self.seconds,
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() * 100.0 / self.seconds,
            self.us_per_packet(),
            1e6 / self.us_per_packet(),
        )
    }
}

fn key(seed: u8) -> LessSafeKey {
    let k = [seed; 16];
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &k).expect("16-byte key"))
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn pin(core: Option<usize>) {
    let Some(core) = core else { return };
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Relay `rate` packets/s of `size` bytes to `viewers` for `seconds`.
pub fn run(
    viewers: usize,
    rate: u64,
    size: usize,
    seconds: u64,
    relay_core: Option<usize>,
    tool_core: Option<usize>,
) -> std::io::Result<Ceiling> {
    let relay = UdpSocket::bind("127.0.0.1:0")?;
    udp_batch::grow_buffers(&relay, 8 << 20);
    let relay_addr = relay.local_addr()?;
    let sinks: Vec<UdpSocket> = (0..viewers).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let sink_addrs: Vec<_> = sinks.iter().map(|s| s.local_addr()).collect::<Result<_, _>>()?;
    for s in &sinks {
        s.set_nonblocking(true)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicU64::new(0));

    // Feeder: encrypted packets at `rate`, and a drain of every viewer socket, on the tool core.
    let feeder = {
        let stop = stop.clone();
        let drained = drained.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            pin(tool_core);
            let out = UdpSocket::bind("127.0.0.1:0")?;
            let k = key(0);
            let start = Instant::now();
            let mut seq = 0u64;
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while seq < due {
                    let mut pkt = vec![0x80u8; HEADER];
                    pkt[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
                    let mut body = vec![(seq % 251) as u8; size];
                    k.seal_in_place_append_tag(nonce(seq), Aad::from(&pkt[..]), &mut body)
                        .map_err(std::io::Error::other)?;
                    pkt.extend_from_slice(&body);
                    let _ = out.send_to(&pkt, relay_addr);
                    seq += 1;
                }
                for s in &sinks {
                    while s.recv_from(&mut buf).is_ok() {
                        drained.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        })
    };

    pin(relay_core);
    let inbound = key(0);
    let outbound: Vec<LessSafeKey> = (0..viewers).map(|i| key(i as u8 + 1)).collect();
    let mut batch = Box::<RecvBatch>::default();
    let mut send = SendBatch::default();
    let (mut received, mut sent, mut out_seq) = (0u64, 0u64, 0u64);
    let mut plain = Vec::with_capacity(2048);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    while Instant::now() < end {
        let n = batch.recv(&relay).unwrap_or(0);
        if n == 0 {
            udp_batch::wait_readable(&relay, Duration::from_millis(1));
            continue;
        }
        for i in 0..n {
            let Some((data, _)) = batch.get(i) else { continue };
            if data.len() < HEADER + TAG {
                continue;
            }
            received += 1;
            let seq = u16::from_be_bytes([data[2], data[3]]) as u64;
            plain.clear();
            plain.extend_from_slice(&data[HEADER..]);
            let Ok(clear) = inbound.open_in_place(nonce(seq), Aad::from(&data[..HEADER]), &mut plain) else {
                continue;
            };
            let clear_len = clear.len();
            let mut header = [0u8; HEADER];
            header.copy_from_slice(&data[..HEADER]);
            for (k, to) in outbound.iter().zip(&sink_addrs) {
                // One buffer per datagram (it is handed to sendmmsg), encrypted in place.
                let mut out = Vec::with_capacity(HEADER + clear_len + TAG);
                out.extend_from_slice(&header);
                out.extend_from_slice(&plain[..clear_len]);
                let Ok(tag) = k.seal_in_place_separate_tag(nonce(out_seq), Aad::from(&header), &mut out[HEADER..])
                else {
                    continue;
                };
                out.extend_from_slice(tag.as_ref());
                out_seq += 1;
                send.push(&relay, out, *to);
                sent += 1;
            }
        }
        send.flush(&relay);
    }
    let cpu = thread_cpu().saturating_sub(cpu0);
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    Ok(Ceiling { viewers, sent, received, cpu, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_every_packet_to_every_viewer_and_counts_cpu() {
        let c = run(3, 200, 1000, 1, None, None).unwrap();
        // About 200 packets in; each goes to 3 viewers.
        assert!(c.received >= 150, "received {}", c.received);
        assert_eq!(c.sent, c.received * 3);
        assert!(c.cpu > Duration::ZERO && c.us_per_packet() > 0.0);
    }
}
