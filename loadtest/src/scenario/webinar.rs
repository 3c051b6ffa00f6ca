//! `webinar`: one publisher → K viewers in one room, on any `Server` (yunshi: WHIP/WHEP).

use std::time::Duration;

use crate::report::Totals;
use crate::scenario::Harness;
use crate::server::{Server, Session};

pub struct Webinar {
    pub room: String,
    pub publisher: (u64, Session),
    pub viewers: Vec<(u64, Session)>,
}

impl Webinar {
    pub fn start(h: &mut Harness, server: &mut dyn Server, room: &str, viewers: usize) -> Result<Webinar, String> {
        server.prepare_room(room)?;
        let (peer, session) = server.publisher(room, h.media.clone(), h.bind)?;
        let key = h.key();
        h.add(key, peer);
        h.wait_connected(&[key], Duration::from_secs(10))?;
        let mut w = Webinar { room: room.to_string(), publisher: (key, session), viewers: Vec::new() };
        w.add_viewers(h, server, viewers)?;
        Ok(w)
    }

    pub fn add_viewers(&mut self, h: &mut Harness, server: &mut dyn Server, n: usize) -> Result<(), String> {
        let mut keys = Vec::new();
        for _ in 0..n {
            let (peer, session) = server.viewer(&self.room, h.red, h.bind)?;
            let key = h.key();
            h.add(key, peer);
            keys.push(key);
            self.viewers.push((key, session));
        }
        h.wait_connected(&keys, Duration::from_secs(10 + n as u64 / 10))
    }

    pub fn end(self, h: &Harness, server: &mut dyn Server) {
        for (key, session) in self.viewers.iter().chain(std::iter::once(&self.publisher)) {
            server.end(session);
            h.remove(*key);
        }
    }
}

pub fn run(
    h: &mut Harness,
    server: &mut dyn Server,
    room: &str,
    viewers: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Totals, String> {
    let w = Webinar::start(h, server, room, viewers)?;
    std::thread::sleep(warmup);
    let totals = h.measure(duration, &format!("webinar ({})", server.name()));
    w.end(h, server);
    Ok(totals)
}
