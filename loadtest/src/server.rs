//! The server under test, as the scenarios that run against more than one kind of SFU see it:
//! a room to prepare, publishers and viewers to negotiate, sessions to end. yunshi speaks
//! WHIP/WHEP (`Yunshi`); Janus its VideoRoom plugin over its HTTP API (`janus`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::http;
use crate::peer::{LoadPeer, Media};

/// Something to end when the run is over (a WHIP/WHEP resource, a Janus handle).
#[derive(Debug, Clone, Default)]
pub struct Session(pub String);

pub trait Server: Send {
    fn name(&self) -> &str;
    fn prepare_room(&mut self, room: &str) -> Result<(), String>;
    /// A publisher of `media` in `room`, negotiated, ready for a worker.
    fn publisher(&mut self, room: &str, media: Arc<Media>, bind: IpAddr) -> Result<(LoadPeer, Session), String>;
    /// A viewer of `room`'s publisher, negotiated, ready for a worker; `red`: RED audio if the
    /// server offers it.
    fn viewer(&mut self, room: &str, red: bool, bind: IpAddr) -> Result<(LoadPeer, Session), String>;
    fn end(&mut self, session: &Session);
    /// Tell the server a viewer's player is `max_height` pixels high (WHEP's layer extension).
    fn set_viewer_height(&mut self, _session: &Session, _max_height: u16) -> Result<(), String> {
        Err(format!("{}: no layer selection for WHEP viewers", self.name()))
    }
}

/// yunshi: WHIP to publish, WHEP to view, a bearer token for both.
pub struct Yunshi {
    pub server: String,
    pub token: String,
}

impl Server for Yunshi {
    fn name(&self) -> &str {
        "yunshi"
    }

    fn prepare_room(&mut self, room: &str) -> Result<(), String> {
        http::ensure_room(&self.server, &self.token, room)
    }

    fn publisher(&mut self, room: &str, media: Arc<Media>, bind: IpAddr) -> Result<(LoadPeer, Session), String> {
        let (mut peer, offer) = LoadPeer::publisher(media, bind).map_err(|e| e.to_string())?;
        peer.signalled_at = Instant::now();
        let (location, answer) = http::post_offer(&self.server, &self.token, &format!("/whip/{room}"), &offer)?;
        peer.accept_answer(&answer)?;
        Ok((peer, Session(location)))
    }

    fn viewer(&mut self, room: &str, red: bool, bind: IpAddr) -> Result<(LoadPeer, Session), String> {
        let (mut peer, offer) = LoadPeer::viewer(red, bind).map_err(|e| e.to_string())?;
        peer.signalled_at = Instant::now();
        let (location, answer) = http::post_offer(&self.server, &self.token, &format!("/whep/{room}"), &offer)?;
        peer.accept_answer(&answer)?;
        Ok((peer, Session(location)))
    }

    fn end(&mut self, session: &Session) {
        if !session.0.is_empty() {
            let _ = http::request(&self.server, "DELETE", &session.0, Some(&self.token), None, b"");
        }
    }

    fn set_viewer_height(&mut self, session: &Session, max_height: u16) -> Result<(), String> {
        let body = serde_json::json!({ "maxHeight": max_height }).to_string();
        let path = format!("{}/layer", session.0);
        let r =
            http::request(&self.server, "POST", &path, Some(&self.token), Some("application/json"), body.as_bytes())
                .map_err(|e| format!("{path}: {e}"))?;
        match r.status {
            204 => Ok(()),
            s => Err(format!("{path}: {s} {}", r.text())),
        }
    }
}
