//! `meeting`: R rooms × P participants over the conference WebSocket (docs/api.md); everyone
//! publishes audio and video and receives everyone else, as browsers in a call do.
//!
//! Each participant is a WebSocket (serviced by one control thread, non-blocking) and two
//! endpoints on the workers: the publish connection (we offer) and the subscribe connection
//! (the server offers, again whenever tracks come or go; the worker that owns it answers).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::media::MediaKind;
use tungstenite::{Message, WebSocket};

use crate::http;
use crate::peer::{LoadPeer, Media};
use crate::report::Totals;
use crate::scenario::{Dispatcher, Harness};
use crate::worker::Command;

/// Where a worker sends the answer to a subscribe offer: (endpoint key, SDP or error).
type AnswerTx = Sender<(u64, Result<String, String>)>;

const PING_EVERY: Duration = Duration::from_secs(10);

struct Participant {
    name: String,
    ws: WebSocket<TcpStream>,
    publish_key: u64,
    subscribe_key: u64,
    /// The publish endpoint until the server's answer arrives.
    publisher: Option<LoadPeer>,
    last_ping: Instant,
}

/// What the control thread reports.
#[derive(Default)]
struct Status {
    errors: Vec<String>,
}

pub struct Meeting {
    stop: Arc<AtomicBool>,
    control: Option<std::thread::JoinHandle<()>>,
    status: Arc<Mutex<Status>>,
    /// (publish key, subscribe key) per participant.
    pub keys: Vec<(u64, u64)>,
    pub participants_per_room: usize,
}

fn connect(server: &str, token: &str, room: &str) -> Result<WebSocket<TcpStream>, String> {
    let host = http::authority(server);
    let stream = TcpStream::connect(host).map_err(|e| format!("ws connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let url = format!("ws://{host}/api/v1/rooms/{room}/ws?token={token}");
    let (ws, _) = tungstenite::client(url.as_str(), stream).map_err(|e| format!("ws handshake: {e}"))?;
    ws.get_ref().set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(ws)
}

fn send(ws: &mut WebSocket<TcpStream>, v: Value) -> Result<(), String> {
    match ws.send(Message::Text(v.to_string())) {
        Ok(()) => Ok(()),
        // Queued; flushed on a later turn.
        Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

impl Meeting {
    pub fn start(h: &mut Harness, rooms: usize, per_room: usize) -> Result<Meeting, String> {
        let mut participants = Vec::new();
        let mut keys = Vec::new();
        let dispatcher = h.dispatcher();
        for r in 0..rooms {
            let room = format!("loadtest-meeting-{r}");
            http::ensure_room(&h.target.server, &h.target.token, &room)?;
            for p in 0..per_room {
                let name = format!("lt-{r}-{p}");
                let mut ws = connect(&h.target.server, &h.target.token, &room)?;
                let (publish_key, subscribe_key) = (h.key(), h.key());
                let mut sub = LoadPeer::answerer(h.red, h.bind).map_err(|e| e.to_string())?;
                sub.signalled_at = Instant::now();
                dispatcher.add(subscribe_key, sub);
                send(&mut ws, json!({ "type": "join", "name": name }))?;
                keys.push((publish_key, subscribe_key));
                participants.push(Participant {
                    name,
                    ws,
                    publish_key,
                    subscribe_key,
                    publisher: None,
                    last_ping: Instant::now(),
                });
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Status::default()));
        let control = {
            let (stop, status, media, bind) = (stop.clone(), status.clone(), h.media.clone(), h.bind);
            std::thread::Builder::new()
                .name("loadtest-control".into())
                .spawn(move || control(participants, dispatcher, media, bind, stop, status))
                .map_err(|e| e.to_string())?
        };
        Ok(Meeting { stop, control: Some(control), status, keys, participants_per_room: per_room })
    }

    pub fn errors(&self) -> Vec<String> {
        self.status.lock().map(|s| s.errors.clone()).unwrap_or_default()
    }

    /// Until every participant publishes and receives video from everyone else in its room.
    pub fn wait_ready(&self, h: &Harness, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let want = self.participants_per_room.saturating_sub(1);
        loop {
            if let Some(e) = self.errors().first() {
                return Err(e.clone());
            }
            let snap = h.snapshot(false);
            let by_key: HashMap<u64, _> = snap.peers.iter().map(|p| (p.key, p)).collect();
            let ready = self
                .keys
                .iter()
                .filter(|(pk, sk)| {
                    let published = by_key.get(pk).is_some_and(|p| p.connected);
                    let receiving = by_key.get(sk).is_some_and(|p| {
                        p.streams.iter().filter(|s| s.kind == MediaKind::Video && s.received > 0).count() >= want
                    });
                    published && receiving
                })
                .count();
            if ready == self.keys.len() {
                return Ok(());
            }
            if let Some(f) = snap.peers.iter().find_map(|p| p.failed.clone()) {
                return Err(f);
            }
            if Instant::now() > deadline {
                return Err(format!("{ready} of {} participants ready within {limit:?}", self.keys.len()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn end(mut self, h: &Harness) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
        for (pk, sk) in &self.keys {
            h.remove(*pk);
            h.remove(*sk);
        }
    }
}

fn control(
    mut participants: Vec<Participant>,
    dispatcher: Dispatcher,
    media: Arc<Media>,
    bind: IpAddr,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
) {
    let (answers_tx, answers_rx): (AnswerTx, Receiver<_>) = channel();
    let by_subscribe: HashMap<u64, usize> =
        participants.iter().enumerate().map(|(i, p)| (p.subscribe_key, i)).collect();
    let fail = |e: String| {
        if let Ok(mut s) = status.lock() {
            if s.errors.len() < 10 {
                s.errors.push(e);
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        for p in participants.iter_mut() {
            loop {
                match p.ws.read() {
                    Ok(Message::Text(t)) => {
                        busy = true;
                        if let Err(e) = on_message(p, &t, &dispatcher, &media, bind, &answers_tx) {
                            fail(format!("{}: {e}", p.name));
                        }
                    }
                    Ok(_) => busy = true,
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        fail(format!("{}: websocket: {e}", p.name));
                        break;
                    }
                }
            }
            if p.last_ping.elapsed() > PING_EVERY {
                p.last_ping = Instant::now();
                let _ = send(&mut p.ws, json!({ "type": "ping" }));
            }
            let _ = p.ws.flush();
        }
        while let Ok((key, answer)) = answers_rx.try_recv() {
            busy = true;
            let Some(&i) = by_subscribe.get(&key) else { continue };
            let p = &mut participants[i];
            match answer.and_then(|sdp| send(&mut p.ws, json!({ "type": "subscribe_answer", "sdp": sdp }))) {
                Ok(()) => {}
                Err(e) => fail(format!("{}: subscribe answer: {e}", p.name)),
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for p in participants.iter_mut() {
        let _ = send(&mut p.ws, json!({ "type": "leave" }));
        let _ = p.ws.flush();
        let _ = p.ws.close(None);
        let _ = p.ws.flush();
    }
}

fn on_message(
    p: &mut Participant,
    text: &str,
    dispatcher: &Dispatcher,
    media: &Arc<Media>,
    bind: IpAddr,
    answers: &AnswerTx,
) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("bad server message: {e}"))?;
    match v["type"].as_str().unwrap_or_default() {
        "joined" => {
            let (mut peer, offer) = LoadPeer::publisher(media.clone(), bind).map_err(|e| e.to_string())?;
            peer.signalled_at = Instant::now();
            p.publisher = Some(peer);
            send(&mut p.ws, json!({ "type": "publish_offer", "sdp": offer }))
        }
        "publish_answer" => {
            let mut peer = p.publisher.take().ok_or("publish answer without an offer")?;
            peer.accept_answer(v["sdp"].as_str().unwrap_or_default())?;
            dispatcher.add(p.publish_key, peer);
            Ok(())
        }
        "subscribe_offer" => {
            let offer = v["sdp"].as_str().unwrap_or_default().to_string();
            dispatcher.send(p.subscribe_key, Command::Answer { key: p.subscribe_key, offer, reply: answers.clone() });
            Ok(())
        }
        "error" => Err(format!("server error: {}", v["message"])),
        "room_closed" => Err("room closed".into()),
        _ => Ok(()),
    }
}

pub fn run(
    h: &mut Harness,
    rooms: usize,
    participants: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Totals, String> {
    let m = Meeting::start(h, rooms, participants)?;
    let ready = m.wait_ready(h, Duration::from_secs(20 + (rooms * participants) as u64 / 5));
    if let Err(e) = ready {
        m.end(h);
        return Err(e);
    }
    std::thread::sleep(warmup);
    let totals = h.measure(duration, "meeting");
    let errors = m.errors();
    m.end(h);
    match errors.first() {
        Some(e) => Err(format!("during the run: {e}")),
        None => Ok(totals),
    }
}
