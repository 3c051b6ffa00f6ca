//! A UDP relay between a test client and the server that drops a chosen share of the packets
//! going to the client: loss on one leg, on loopback, without root or netem. The client is told
//! the relay's address in place of the server's candidate (see `rewrite_candidate`).

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct LossyRelay {
    /// Where the client sends (instead of the server).
    pub addr: SocketAddr,
    /// Percent of server→client datagrams dropped.
    pub downlink_loss: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl LossyRelay {
    pub fn start(server: SocketAddr) -> LossyRelay {
        let client_side = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_side = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = client_side.local_addr().unwrap();
        let downlink_loss = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        for s in [&client_side, &server_side] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        {
            let (from, to, client, stop) =
                (client_side.try_clone().unwrap(), server_side.try_clone().unwrap(), client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, src)) = from.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(src);
                        let _ = to.send_to(&buf[..n], server);
                    }
                }
            });
        }
        {
            let (loss, stop) = (downlink_loss.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut rng = 0x2545_f491_4f6c_dd1du64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = server_side.recv_from(&mut buf) {
                        // xorshift: reproducible and independent per relay.
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        if (rng % 100) < u64::from(loss.load(Ordering::Relaxed)) {
                            continue;
                        }
                        let dest = *client.lock().unwrap();
                        if let Some(dest) = dest {
                            let _ = client_side.send_to(&buf[..n], dest);
                        }
                    }
                }
            });
        }
        LossyRelay { addr, downlink_loss, stop }
    }

    pub fn set_loss(&self, percent: u32) {
        self.downlink_loss.store(percent, Ordering::Relaxed);
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Point the SDP's host candidates for `server_port` at the relay instead.
pub fn rewrite_candidate(sdp: &str, server_port: u16, relay: SocketAddr) -> String {
    sdp.lines()
        .map(|l| {
            if l.starts_with("a=candidate:") {
                l.replace(&format!(" {server_port} typ"), &format!(" {} typ", relay.port()))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}
