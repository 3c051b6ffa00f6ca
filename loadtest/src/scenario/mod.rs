//! Scenarios and what they share: the harness that spreads endpoints over worker threads and
//! collects their measurements.

pub mod cascade;
pub mod meeting;
pub mod ramp;
pub mod webinar;

use std::net::IpAddr;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::peer::{LoadPeer, Media};
use crate::proc_stat;
use crate::report::Totals;
use crate::worker::{Command, Snapshot, Worker};

/// Where the server is and how the tool behaves.
#[derive(Clone)]
pub struct Target {
    /// `http://host:port` of the server's API.
    pub server: String,
    pub token: String,
    /// The server's process, for its CPU time and memory (same machine only).
    pub server_pid: Option<u32>,
}

/// The workers' command channels, by endpoint key (the same spreading as `Harness`).
#[derive(Clone)]
pub struct Dispatcher {
    workers: Vec<Sender<Command>>,
}

impl Dispatcher {
    pub fn send(&self, key: u64, cmd: Command) {
        let _ = self.workers[(key as usize) % self.workers.len()].send(cmd);
    }

    pub fn add(&self, key: u64, peer: LoadPeer) {
        self.send(key, Command::Add { key, peer: Box::new(peer) });
    }
}

pub struct Harness {
    pub target: Target,
    /// Address the endpoints' sockets bind to.
    pub bind: IpAddr,
    pub media: Arc<Media>,
    /// Receivers negotiate RED audio, as browsers do (the SFU then packs it for them).
    pub red: bool,
    workers: Vec<(Sender<Command>, JoinHandle<()>)>,
    next_key: u64,
    pub progress: bool,
}

impl Harness {
    pub fn new(target: Target, media: Arc<Media>, threads: usize) -> std::io::Result<Harness> {
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = channel();
            let handle = Worker::spawn(format!("loadtest-{i}"), rx)?;
            workers.push((tx, handle));
        }
        Ok(Harness {
            target,
            bind: IpAddr::from([127, 0, 0, 1]),
            media,
            red: true,
            workers,
            next_key: 1,
            progress: true,
        })
    }

    pub fn key(&mut self) -> u64 {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    fn worker(&self, key: u64) -> &Sender<Command> {
        &self.workers[(key as usize) % self.workers.len()].0
    }

    pub fn add(&self, key: u64, peer: LoadPeer) {
        let _ = self.worker(key).send(Command::Add { key, peer: Box::new(peer) });
    }

    pub fn send(&self, key: u64, cmd: Command) {
        let _ = self.worker(key).send(cmd);
    }

    /// Something another thread can hand endpoints and commands to the workers with.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher { workers: self.workers.iter().map(|(w, _)| w.clone()).collect() }
    }

    pub fn remove(&self, key: u64) {
        self.send(key, Command::Remove { key });
    }

    /// Everyone's measurements, merged; latency histograms restart if `reset_latency`.
    pub fn snapshot(&self, reset_latency: bool) -> Snapshot {
        let (tx, rx) = channel();
        for (w, _) in &self.workers {
            let _ = w.send(Command::Snapshot { reply: tx.clone(), reset_latency });
        }
        drop(tx);
        let mut all = Snapshot::default();
        for s in rx.iter().take(self.workers.len()) {
            all.peers.extend(s.peers);
            all.latency.video.merge(&s.latency.video);
            all.latency.audio.merge(&s.latency.audio);
            all.latency.unstamped += s.latency.unstamped;
            all.latency.video_over_fastest.merge(&s.latency.video_over_fastest);
            all.cpu += s.cpu;
        }
        all
    }

    /// Wait until `keys` are all connected (or failed), at most `limit`.
    pub fn wait_connected(&self, keys: &[u64], limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let snap = self.snapshot(false);
            let mine: Vec<_> = snap.peers.iter().filter(|p| keys.contains(&p.key)).collect();
            if let Some(f) = mine.iter().find_map(|p| p.failed.clone()) {
                return Err(f);
            }
            if mine.len() == keys.len() && mine.iter().all(|p| p.connected) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let n = mine.iter().filter(|p| p.connected).count();
                return Err(format!("{n} of {} endpoints connected within {limit:?}", keys.len()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run for `duration` with a progress line each second; returns the totals over the run
    /// (latency only from this period).
    pub fn measure(&self, duration: Duration, label: &str) -> Totals {
        let start = Instant::now();
        let base = self.snapshot(true);
        let base_totals = Totals::from_snapshot(&base);
        let server_cpu0 = self.target.server_pid.and_then(proc_stat::process_cpu);
        while start.elapsed() < duration {
            std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(start.elapsed())));
            if self.progress {
                let t = Totals::from_snapshot(&self.snapshot(false)).since(&base_totals);
                eprint!(
                    "\r{label} {:>4.0}/{:.0} s  {}\x1b[K",
                    start.elapsed().as_secs_f64(),
                    duration.as_secs_f64(),
                    t.progress_line(start.elapsed())
                );
            }
        }
        if self.progress {
            eprintln!();
        }
        let end = self.snapshot(true);
        let mut totals = Totals::from_snapshot(&end).since(&base_totals);
        totals.seconds = start.elapsed().as_secs_f64();
        totals.latency_video = end.latency.video.clone();
        totals.latency_audio = end.latency.audio.clone();
        totals.unstamped = end.latency.unstamped;
        totals.video_over_fastest = end.latency.video_over_fastest.clone();
        if let (Some(a), Some(pid)) = (server_cpu0, self.target.server_pid) {
            totals.server_cpu = proc_stat::process_cpu(pid).map(|b| b.saturating_sub(a));
            totals.server_rss = proc_stat::process_rss(pid);
        }
        totals
    }

    pub fn stop(self) {
        for (w, _) in &self.workers {
            let _ = w.send(Command::Stop);
        }
        for (_, h) in self.workers {
            let _ = h.join();
        }
    }
}
