//! `webinar`: one publisher (WHIP) → K viewers (WHEP) in one room.

use std::time::{Duration, Instant};

use crate::http;
use crate::peer::LoadPeer;
use crate::report::Totals;
use crate::scenario::Harness;

/// A WHIP publisher in `room`; returns its key and session location.
pub fn start_publisher(h: &mut Harness, room: &str) -> Result<(u64, String), String> {
    let (mut peer, offer) = LoadPeer::publisher(h.media.clone()).map_err(|e| e.to_string())?;
    peer.signalled_at = Instant::now();
    let (location, answer) = http::post_offer(&h.target.server, &h.target.token, &format!("/whip/{room}"), &offer)?;
    peer.accept_answer(&answer)?;
    let key = h.key();
    h.add(key, peer);
    Ok((key, location))
}

/// A WHEP viewer of `room`.
pub fn start_viewer(h: &mut Harness, room: &str) -> Result<(u64, String), String> {
    let (mut peer, offer) = LoadPeer::viewer(h.red).map_err(|e| e.to_string())?;
    peer.signalled_at = Instant::now();
    let (location, answer) = http::post_offer(&h.target.server, &h.target.token, &format!("/whep/{room}"), &offer)?;
    peer.accept_answer(&answer)?;
    let key = h.key();
    h.add(key, peer);
    Ok((key, location))
}

pub fn end_session(h: &Harness, location: &str) {
    if !location.is_empty() {
        let _ = http::request(&h.target.server, "DELETE", location, Some(&h.target.token), None, b"");
    }
}

pub struct Webinar {
    pub room: String,
    pub publisher: (u64, String),
    pub viewers: Vec<(u64, String)>,
}

impl Webinar {
    pub fn start(h: &mut Harness, room: &str, viewers: usize) -> Result<Webinar, String> {
        http::ensure_room(&h.target.server, &h.target.token, room)?;
        let publisher = start_publisher(h, room)?;
        h.wait_connected(&[publisher.0], Duration::from_secs(10))?;
        let mut w = Webinar { room: room.to_string(), publisher, viewers: Vec::new() };
        w.add_viewers(h, viewers)?;
        Ok(w)
    }

    pub fn add_viewers(&mut self, h: &mut Harness, n: usize) -> Result<(), String> {
        let mut keys = Vec::new();
        for _ in 0..n {
            let v = start_viewer(h, &self.room)?;
            keys.push(v.0);
            self.viewers.push(v);
        }
        h.wait_connected(&keys, Duration::from_secs(10 + n as u64 / 10))
    }

    pub fn end(self, h: &Harness) {
        for (key, location) in self.viewers.iter().chain(std::iter::once(&self.publisher)) {
            end_session(h, location);
            h.remove(*key);
        }
    }
}

pub fn run(
    h: &mut Harness,
    room: &str,
    viewers: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Totals, String> {
    let w = Webinar::start(h, room, viewers)?;
    std::thread::sleep(warmup);
    let totals = h.measure(duration, "webinar");
    w.end(h);
    Ok(totals)
}
