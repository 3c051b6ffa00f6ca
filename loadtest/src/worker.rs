//! A media thread: owns many endpoints, waits on all their sockets with epoll and on their
//! timers with a heap, and takes commands (add, renegotiate, remove, snapshot) from the control
//! thread through a channel, so signalling never stalls a packet.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use str0m::media::MediaKind;

use crate::peer::{Latency, LoadPeer};
use crate::poller::Poller;
use crate::udp_recv;

/// Longest sleep: commands are looked at least this often.
const MAX_WAIT: Duration = Duration::from_millis(5);
/// Datagrams taken from one socket before looking at the others.
const RECV_BURST: usize = 64;

pub enum Command {
    Add {
        key: u64,
        peer: Box<LoadPeer>,
    },
    /// Answer a (re)offer from the server on endpoint `key`.
    Answer {
        key: u64,
        offer: String,
        reply: Sender<(u64, Result<String, String>)>,
    },
    Remove {
        key: u64,
    },
    Snapshot {
        reply: Sender<Snapshot>,
        reset_latency: bool,
    },
    Stop,
}

/// What a receiver got on one stream.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    pub kind: MediaKind,
    pub received: u64,
    pub lost: u64,
    pub bytes: u64,
    pub jitter: Duration,
    pub resolution: Option<(u16, u16)>,
}

#[derive(Debug, Clone)]
pub struct PeerSummary {
    pub key: u64,
    pub publisher: bool,
    pub connected: bool,
    pub failed: Option<String>,
    /// Signalling start to the first keyframe (receivers).
    pub first_keyframe: Option<Duration>,
    /// When that first keyframe arrived.
    pub first_keyframe_at: Option<Instant>,
    pub streams: Vec<StreamSummary>,
    pub frames_sent: u64,
    pub keyframe_requests: u64,
    pub send_errors: u64,
}

#[derive(Default, Clone)]
pub struct Snapshot {
    pub peers: Vec<PeerSummary>,
    /// Latency since the last reset.
    pub latency: Latency,
    /// CPU time this worker thread has used.
    pub cpu: Duration,
}

pub struct Worker {
    rx: Receiver<Command>,
    peers: HashMap<u64, (LoadPeer, Instant)>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    poller: Poller,
    latency: Latency,
}

impl Worker {
    pub fn spawn(name: String, rx: Receiver<Command>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let poller = Poller::new()?;
        std::thread::Builder::new().name(name).spawn(move || {
            let mut w =
                Worker { rx, peers: HashMap::new(), timers: BinaryHeap::new(), poller, latency: Latency::default() };
            w.run();
        })
    }

    fn schedule(&mut self, key: u64, at: Instant) {
        if let Some((_, wake)) = self.peers.get_mut(&key) {
            if *wake != at {
                *wake = at;
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    fn run(&mut self) {
        let mut ready = Vec::new();
        let mut buf = vec![0u8; 2048];
        loop {
            while let Ok(cmd) = self.rx.try_recv() {
                if !self.command(cmd) {
                    return;
                }
            }
            let now = Instant::now();
            while let Some(&Reverse((at, key))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                let Some((peer, wake)) = self.peers.get_mut(&key) else { continue };
                if *wake != at {
                    continue; // superseded
                }
                let next = peer.tick(now, &mut self.latency);
                *wake = next;
                self.timers.push(Reverse((next, key)));
            }
            let wait = self.timers.peek().map_or(MAX_WAIT, |Reverse((at, _))| at.saturating_duration_since(now));
            ready.clear();
            if self.poller.wait(wait.min(MAX_WAIT), &mut ready).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
            for &key in &ready {
                let Some((peer, _)) = self.peers.get_mut(&key) else { continue };
                let mut next = None;
                for _ in 0..RECV_BURST {
                    match udp_recv::recv(peer.socket(), &mut buf) {
                        Ok((n, from, at)) => {
                            next = Some(peer.receive(Instant::now(), at, from, &buf[..n], &mut self.latency))
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                if let Some(next) = next {
                    self.schedule(key, next);
                }
            }
        }
    }

    /// Returns false to stop.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Add { key, peer } => {
                if self.poller.add(peer.socket().as_raw_fd(), key).is_ok() {
                    let now = Instant::now();
                    self.peers.insert(key, (*peer, now));
                    self.timers.push(Reverse((now, key)));
                }
            }
            Command::Answer { key, offer, reply } => {
                let result = match self.peers.get_mut(&key) {
                    Some((peer, _)) => peer.answer(&offer),
                    None => Err(format!("no endpoint {key}")),
                };
                let _ = reply.send((key, result));
                // The answer changes what str0m wants to send: look at it now.
                if let Some((_, wake)) = self.peers.get_mut(&key) {
                    *wake = Instant::now();
                    self.timers.push(Reverse((*wake, key)));
                }
            }
            Command::Remove { key } => {
                if let Some((peer, _)) = self.peers.remove(&key) {
                    self.poller.remove(peer.socket().as_raw_fd());
                }
            }
            Command::Snapshot { reply, reset_latency } => {
                let snap = Snapshot {
                    peers: self.peers.iter().map(|(k, (p, _))| summary(*k, p)).collect(),
                    latency: self.latency.clone(),
                    cpu: thread_cpu(),
                };
                if reset_latency {
                    self.latency = Latency::default();
                }
                let _ = reply.send(snap);
            }
            Command::Stop => return false,
        }
        true
    }
}

fn summary(key: u64, p: &LoadPeer) -> PeerSummary {
    let mut s = PeerSummary {
        key,
        publisher: p.publisher_stats().is_some(),
        connected: p.connected_at.is_some(),
        failed: p.failed.clone(),
        first_keyframe: None,
        first_keyframe_at: None,
        streams: Vec::new(),
        frames_sent: 0,
        keyframe_requests: 0,
        send_errors: p.send_errors,
    };
    if let Some(pubr) = p.publisher_stats() {
        s.frames_sent = pubr.frames_sent;
        s.keyframe_requests = pubr.keyframe_requests;
    }
    if let Some(sub) = p.subscriber_stats() {
        let first = sub
            .streams
            .values()
            .filter(|st| st.kind == MediaKind::Video)
            .filter_map(|st| st.stats.first_keyframe_at)
            .min();
        s.first_keyframe = first.map(|t| t.saturating_duration_since(p.signalled_at));
        s.first_keyframe_at = first;
        s.streams = sub
            .streams
            .values()
            .map(|st| StreamSummary {
                kind: st.kind,
                received: st.stats.received,
                lost: st.stats.lost(),
                bytes: st.stats.bytes,
                jitter: st.stats.jitter(),
                resolution: st.stats.resolution,
            })
            .collect();
    }
    s
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
