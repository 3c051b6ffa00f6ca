//! Janus (VideoRoom plugin) as a `Server`, over Janus's HTTP API.
//!
//! One Janus session for the whole run, kept alive by a long-poll thread (`GET /janus/{session}`)
//! that also routes the asynchronous events to whoever waits for them, by the handle they come
//! from (`sender`) and the request they answer (`transaction`). Every endpoint gets its own
//! handle: a publisher `joinandconfigure`s with its offer, a viewer `join`s as a subscriber of
//! the room's publisher, answers Janus's offer and `start`s. Offers and answers are
//! non-trickle: both sides' candidates are in the SDP.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http;
use crate::peer::{LoadPeer, Media};
use crate::server::{Server, Session};

const PLUGIN: &str = "janus.plugin.videoroom";
/// How long to wait for the plugin's answer to a request (Janus gathers its candidates first).
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Janus answers a long poll after 30 s at most (a keepalive when nothing happened).
const POLL_TIMEOUT: Duration = Duration::from_secs(70);
/// Events kept per handle that nobody waits for (webrtcup, media, ...), oldest dropped first.
const MAX_QUEUED: usize = 64;
/// Events per long-poll answer.
const MAX_EVENTS: usize = 16;
/// Room settings: room ids below 2^53 stay exact in any JSON implementation.
const ROOM_ID_MASK: u64 = (1 << 53) - 1;
/// Janus VideoRoom error: the room exists already.
const ROOM_EXISTS: i64 = 427;

pub struct Janus {
    base: String,
    /// The API's path on the server, e.g. `/janus`.
    prefix: String,
    session: Option<Arc<Poll>>,
    rooms: HashMap<String, Room>,
    next_transaction: u64,
}

struct Room {
    id: u64,
    /// The publisher's feed id, from its `joined` event: what viewers subscribe to.
    feed: Option<u64>,
}

/// A Janus session and its long poll.
struct Poll {
    id: u64,
    events: Events,
    stop: AtomicBool,
}

/// Asynchronous events by the handle they come from, for `wait`.
#[derive(Default)]
struct Events {
    state: Mutex<EventState>,
    changed: Condvar,
}

#[derive(Default)]
struct EventState {
    by_handle: HashMap<u64, VecDeque<Value>>,
    /// Why the long poll ended (the session is gone): every waiter fails with it.
    dead: Option<String>,
}

/// What an event in a handle's queue means to someone waiting for `transaction`'s reply.
#[derive(Debug, PartialEq)]
enum Fits {
    Reply,
    /// The handle's PeerConnection or the handle itself went away.
    Gone(String),
    Other,
}

fn classify(ev: &Value, transaction: &str) -> Fits {
    match ev.get("janus").and_then(Value::as_str) {
        Some("event") if ev.get("transaction").and_then(Value::as_str) == Some(transaction) => Fits::Reply,
        Some("hangup") => Fits::Gone(format!(
            "janus hung up the PeerConnection: {}",
            ev.get("reason").and_then(Value::as_str).unwrap_or("no reason given")
        )),
        Some("detached") => Fits::Gone("janus detached the handle".into()),
        _ => Fits::Other,
    }
}

impl Events {
    fn lock(&self) -> MutexGuard<'_, EventState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// File an event from the long poll under its handle (events without one are dropped).
    fn route(&self, ev: Value) {
        let Some(sender) = ev.get("sender").and_then(Value::as_u64) else { return };
        let mut s = self.lock();
        let q = s.by_handle.entry(sender).or_default();
        if q.len() >= MAX_QUEUED {
            q.pop_front();
        }
        q.push_back(ev);
        drop(s);
        self.changed.notify_all();
    }

    fn fail(&self, why: String) {
        self.lock().dead.get_or_insert(why);
        self.changed.notify_all();
    }

    fn dead(&self) -> Option<String> {
        self.lock().dead.clone()
    }

    fn forget(&self, handle: u64) {
        self.lock().by_handle.remove(&handle);
    }

    /// The plugin's event answering `transaction` on `handle`; events before it that answer
    /// nothing we wait for are dropped.
    fn wait(&self, handle: u64, transaction: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(q) = s.by_handle.get_mut(&handle) {
                while let Some(ev) = q.pop_front() {
                    match classify(&ev, transaction) {
                        Fits::Reply => return Ok(ev),
                        Fits::Gone(why) => return Err(why),
                        Fits::Other => {}
                    }
                }
            }
            if let Some(why) = &s.dead {
                return Err(format!("janus session lost: {why}"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("janus: no answer to {transaction} on handle {handle} within {timeout:?}"));
            }
            s = self.changed.wait_timeout(s, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// The API path in `base` (`http://host:port/janus` → `/janus`); `/janus` when it has none.
fn api_prefix(base: &str) -> String {
    let s = base.strip_prefix("http://").unwrap_or(base);
    match s.find('/').map(|i| s[i..].trim_end_matches('/')) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => "/janus".to_string(),
    }
}

/// The VideoRoom room id for a room name: FNV-1a, kept below 2^53, never 0.
pub fn room_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & ROOM_ID_MASK).max(1)
}

/// A Janus core reply checked for `"janus": "error"`.
fn core_reply(v: Value) -> Result<Value, String> {
    if v.get("janus").and_then(Value::as_str) == Some("error") {
        let e = v.get("error");
        let code = e.and_then(|e| e.get("code")).and_then(Value::as_i64).unwrap_or(0);
        let reason = e.and_then(|e| e.get("reason")).and_then(Value::as_str).unwrap_or("no reason given");
        return Err(format!("janus error {code}: {reason}"));
    }
    Ok(v)
}

/// The `data` of a create/attach reply's id.
fn reply_id(v: &Value) -> Result<u64, String> {
    v.get("data").and_then(|d| d.get("id")).and_then(Value::as_u64).ok_or_else(|| format!("janus: no id in {v}"))
}

/// The plugin's data in a reply or event; its errors (`error_code`, `error`) as `Err`.
fn plugin_data(ev: &Value) -> Result<&Value, String> {
    let data = ev
        .get("plugindata")
        .and_then(|p| p.get("data"))
        .ok_or_else(|| format!("janus: no plugin data in {}", truncate(&ev.to_string())))?;
    if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
        let msg = data.get("error").and_then(Value::as_str).unwrap_or("no error text");
        return Err(format!("janus videoroom error {code}: {msg}"));
    }
    Ok(data)
}

/// The SDP of the event's `jsep` of type `kind` (offer or answer).
fn jsep_sdp(ev: &Value, kind: &str) -> Result<String, String> {
    let jsep = ev.get("jsep").ok_or_else(|| format!("janus: no jsep {kind} in {}", truncate(&ev.to_string())))?;
    let t = jsep.get("type").and_then(Value::as_str).unwrap_or("");
    if t != kind {
        return Err(format!("janus: expected a jsep {kind}, got {t:?}"));
    }
    jsep.get("sdp").and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("janus: jsep {kind} without sdp"))
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A long poll's answer: one event, or an array of them (`maxev` > 1); keepalives dropped.
fn poll_events(body: &[u8]) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("janus long poll: bad JSON: {e}"))?;
    let all = match v {
        Value::Array(a) => a,
        v => vec![v],
    };
    Ok(all.into_iter().filter(|e| e.get("janus").and_then(Value::as_str) != Some("keepalive")).collect())
}

/// `GET path` waiting longer than Janus's 30 s long poll (`http::request` gives up after 15 s,
/// which would drop events Janus is about to send).
fn long_poll(base: &str, path: &str) -> Result<Vec<Value>, String> {
    let r = http::request_waiting(base, "GET", path, None, None, b"", POLL_TIMEOUT).map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("HTTP {}: {}", r.status, truncate(&r.text())));
    }
    poll_events(&r.body)
}

impl Poll {
    /// Poll until stopped or the session is gone; events go to `events`.
    fn run(&self, base: &str, prefix: &str) {
        let path = format!("{prefix}/{}?maxev={MAX_EVENTS}", self.id);
        let mut failures = 0;
        while !self.stop.load(Ordering::Relaxed) {
            match long_poll(base, &path) {
                Ok(evs) => {
                    failures = 0;
                    for ev in evs {
                        match ev.get("janus").and_then(Value::as_str) {
                            Some("error") => {
                                let why = core_reply(ev).err().unwrap_or_default();
                                return self.events.fail(why);
                            }
                            Some("timeout") => return self.events.fail("janus timed the session out".into()),
                            _ => self.events.route(ev),
                        }
                    }
                }
                Err(e) if e.starts_with("HTTP 404") => {
                    return self
                        .events
                        .fail(format!("janus no longer knows session {} (long poll: HTTP 404)", self.id));
                }
                Err(e) => {
                    failures += 1;
                    if failures >= 3 {
                        return self.events.fail(format!("long poll: {e}"));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}

impl Janus {
    pub fn new(base: &str) -> Janus {
        Janus {
            base: base.trim_end_matches('/').to_string(),
            prefix: api_prefix(base),
            session: None,
            rooms: HashMap::new(),
            next_transaction: 1,
        }
    }

    fn transaction(&mut self) -> String {
        let t = format!("lt{}", self.next_transaction);
        self.next_transaction += 1;
        t
    }

    /// POST a Janus API request (`transaction` filled in) to `prefix` + `path`.
    fn post(&mut self, path: &str, mut body: Value) -> Result<(String, Value), String> {
        let tx = self.transaction();
        body["transaction"] = Value::String(tx.clone());
        let full = format!("{}{path}", self.prefix);
        let what = body.get("janus").and_then(Value::as_str).unwrap_or("request").to_string();
        let at = format!("{}{full}", http::authority(&self.base));
        let r = http::request(&self.base, "POST", &full, None, Some("application/json"), body.to_string().as_bytes())
            .map_err(|e| format!("janus {what} (POST {at}): {e}"))?;
        if r.status != 200 {
            return Err(format!("janus {what} (POST {at}): HTTP {} {}", r.status, r.text()));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("janus {what}: bad JSON: {e}"))?;
        let v = core_reply(v).map_err(|e| format!("{what}: {e}"))?;
        Ok((tx, v))
    }

    /// The session, created (and its long poll started) if there is none or it was lost.
    fn session(&mut self) -> Result<Arc<Poll>, String> {
        if let Some(p) = &self.session {
            if p.events.dead().is_none() {
                return Ok(p.clone());
            }
        }
        if let Some(old) = self.session.take() {
            old.stop.store(true, Ordering::Relaxed);
            // Handles of the lost session are gone with it, and so is what joined through them.
            self.rooms.values_mut().for_each(|r| r.feed = None);
        }
        let (_, v) = self.post("", json!({ "janus": "create" }))?;
        let poll = Arc::new(Poll { id: reply_id(&v)?, events: Events::default(), stop: AtomicBool::new(false) });
        let (p, base, prefix) = (poll.clone(), self.base.clone(), self.prefix.clone());
        std::thread::Builder::new()
            .name("janus-poll".into())
            .spawn(move || p.run(&base, &prefix))
            .map_err(|e| format!("janus long poll thread: {e}"))?;
        self.session = Some(poll.clone());
        Ok(poll)
    }

    fn attach(&mut self, session: u64) -> Result<u64, String> {
        let (_, v) = self.post(&format!("/{session}"), json!({ "janus": "attach", "plugin": PLUGIN }))?;
        reply_id(&v).map_err(|e| format!("attach: {e}"))
    }

    fn detach(&mut self, poll: &Poll, handle: u64) {
        let _ = self.post(&format!("/{}/{handle}", poll.id), json!({ "janus": "detach" }));
        poll.events.forget(handle);
    }

    /// Send a plugin message (and `jsep`) on `handle`; the plugin's reply, synchronous or the
    /// event that answers it, with plugin errors as `Err`.
    fn message(&mut self, poll: &Poll, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let request = body.get("request").and_then(Value::as_str).unwrap_or("message").to_string();
        let mut msg = json!({ "janus": "message", "body": body });
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let (tx, v) = self.post(&format!("/{}/{handle}", poll.id), msg).map_err(|e| format!("{request}: {e}"))?;
        let ev = match v.get("janus").and_then(Value::as_str) {
            Some("ack") => poll.events.wait(handle, &tx, EVENT_TIMEOUT).map_err(|e| format!("{request}: {e}"))?,
            _ => v,
        };
        plugin_data(&ev).map_err(|e| format!("{request}: {e}"))?;
        Ok(ev)
    }

    fn room(&self, room: &str) -> u64 {
        self.rooms.get(room).map_or_else(|| room_id(room), |r| r.id)
    }

    fn publish(
        &mut self,
        poll: &Poll,
        handle: u64,
        room: &str,
        peer: &mut LoadPeer,
        offer: String,
    ) -> Result<u64, String> {
        let id = self.room(room);
        let body = json!({ "request": "joinandconfigure", "room": id, "ptype": "publisher", "display": "loadtest",
            "audio": true, "video": true });
        let jsep = json!({ "type": "offer", "sdp": offer, "trickle": false });
        let ev = self.message(poll, handle, body, Some(jsep))?;
        let data = plugin_data(&ev)?;
        let feed = data.get("id").and_then(Value::as_u64).ok_or_else(|| format!("janus: no publisher id in {data}"))?;
        peer.accept_answer(&jsep_sdp(&ev, "answer")?).map_err(|e| format!("janus answer: {e}"))?;
        Ok(feed)
    }

    fn subscribe(&mut self, poll: &Poll, handle: u64, room: &str, peer: &mut LoadPeer) -> Result<(), String> {
        let id = self.room(room);
        let feed = self
            .rooms
            .get(room)
            .and_then(|r| r.feed)
            .ok_or_else(|| format!("janus: room {room} has no publisher of ours to view"))?;
        let body = json!({ "request": "join", "room": id, "ptype": "subscriber", "streams": [{ "feed": feed }] });
        let ev = self.message(poll, handle, body, None)?;
        let answer = peer.answer(&jsep_sdp(&ev, "offer")?).map_err(|e| format!("janus offer: {e}"))?;
        let jsep = json!({ "type": "answer", "sdp": answer, "trickle": false });
        self.message(poll, handle, json!({ "request": "start" }), Some(jsep))?;
        Ok(())
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        if let Some(p) = self.session.take() {
            p.stop.store(true, Ordering::Relaxed);
            if p.events.dead().is_none() {
                let _ = self.post(&format!("/{}", p.id), json!({ "janus": "destroy" }));
            }
        }
    }
}

impl Server for Janus {
    fn name(&self) -> &str {
        "janus"
    }

    fn prepare_room(&mut self, room: &str) -> Result<(), String> {
        let poll = self.session()?;
        let handle = self.attach(poll.id)?;
        let id = room_id(room);
        let body = json!({
            "request": "create", "room": id, "description": format!("loadtest {room}"), "permanent": false,
            "is_private": false, "publishers": 6, "bitrate": 10_000_000, "videocodec": "h264", "audiocodec": "opus",
        });
        let created = match self.message(&poll, handle, body, None) {
            Ok(_) => Ok(()),
            Err(e) if e.contains(&format!("videoroom error {ROOM_EXISTS}:")) => Ok(()),
            Err(e) => Err(format!("janus: create room {room} ({id}): {e}")),
        };
        self.detach(&poll, handle);
        created?;
        self.rooms.entry(room.to_string()).or_insert(Room { id, feed: None });
        Ok(())
    }

    fn publisher(&mut self, room: &str, media: Arc<Media>, bind: IpAddr) -> Result<(LoadPeer, Session), String> {
        let (mut peer, offer) = LoadPeer::publisher(media, bind).map_err(|e| format!("publisher endpoint: {e}"))?;
        peer.signalled_at = Instant::now();
        let poll = self.session()?;
        let handle = self.attach(poll.id)?;
        match self.publish(&poll, handle, room, &mut peer, offer) {
            Ok(feed) => {
                let id = self.room(room);
                self.rooms.entry(room.to_string()).or_insert(Room { id, feed: None }).feed = Some(feed);
                Ok((peer, Session(format!("{}/{handle}", poll.id))))
            }
            Err(e) => {
                self.detach(&poll, handle);
                Err(format!("janus publisher in {room}: {e}"))
            }
        }
    }

    fn viewer(&mut self, room: &str, red: bool, bind: IpAddr) -> Result<(LoadPeer, Session), String> {
        let mut peer = LoadPeer::answerer(red, bind).map_err(|e| format!("viewer endpoint: {e}"))?;
        peer.signalled_at = Instant::now();
        let poll = self.session()?;
        let handle = self.attach(poll.id)?;
        match self.subscribe(&poll, handle, room, &mut peer) {
            Ok(()) => Ok((peer, Session(format!("{}/{handle}", poll.id)))),
            Err(e) => {
                self.detach(&poll, handle);
                Err(format!("janus viewer in {room}: {e}"))
            }
        }
    }

    /// Detach the session's handle (Janus hangs its PeerConnection up and leaves the room).
    fn end(&mut self, session: &Session) {
        let Some((s, h)) = session.0.split_once('/') else { return };
        let (Ok(s), Ok(h)) = (s.parse::<u64>(), h.parse::<u64>()) else { return };
        let _ = self.post(&format!("/{s}/{h}"), json!({ "janus": "detach" }));
        if let Some(p) = self.session.as_ref().filter(|p| p.id == s) {
            p.events.forget(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(handle: u64, tx: Option<&str>, data: Value) -> Value {
        let mut v = json!({ "janus": "event", "session_id": 1, "sender": handle,
            "plugindata": { "plugin": PLUGIN, "data": data } });
        if let Some(t) = tx {
            v["transaction"] = json!(t);
        }
        v
    }

    #[test]
    fn room_ids_are_stable_distinct_and_json_safe() {
        assert_eq!(room_id("loadtest-webinar"), room_id("loadtest-webinar"));
        assert_ne!(room_id("loadtest-webinar"), room_id("loadtest-ramp"));
        assert_ne!(room_id("a"), room_id("b"));
        for name in ["", "a", "loadtest-webinar", "loadtest-ramp", "x".repeat(1000).as_str()] {
            let id = room_id(name);
            assert!((1..(1 << 53)).contains(&id), "{name}: {id}");
        }
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c; masked to 53 bits.
        assert_eq!(room_id("a"), 0xaf63dc4c8601ec8c & ROOM_ID_MASK);
    }

    #[test]
    fn api_prefix_comes_from_the_base_url() {
        assert_eq!(api_prefix("http://10.99.0.1:8088/janus"), "/janus");
        assert_eq!(api_prefix("http://10.99.0.1:8088/janus/"), "/janus");
        assert_eq!(api_prefix("http://10.99.0.1:8088/gw/janus"), "/gw/janus");
        assert_eq!(api_prefix("http://10.99.0.1:8088"), "/janus");
        assert_eq!(api_prefix("http://10.99.0.1:8088/"), "/janus");
        let j = Janus::new("http://10.99.0.1:8088/janus/");
        assert_eq!((j.base.as_str(), j.prefix.as_str()), ("http://10.99.0.1:8088/janus", "/janus"));
        assert_eq!(http::authority(&j.base), "10.99.0.1:8088");
    }

    #[test]
    fn events_reach_the_waiter_of_their_handle_and_transaction() {
        let e = Events::default();
        e.route(json!({ "janus": "webrtcup", "session_id": 1, "sender": 7 }));
        e.route(ev(7, None, json!({ "videoroom": "event", "publishers": [] })));
        e.route(ev(8, Some("t1"), json!({ "videoroom": "attached", "id": 8 })));
        e.route(ev(7, Some("t1"), json!({ "videoroom": "joined", "id": 42 })));
        e.route(json!({ "janus": "keepalive" })); // no sender: dropped
        let got = e.wait(7, "t1", Duration::from_millis(10)).unwrap();
        assert_eq!(got["plugindata"]["data"]["id"], 42);
        // Handle 7's unsolicited events before the reply were consumed; 8's is still there.
        assert!(e.wait(7, "t1", Duration::from_millis(10)).unwrap_err().contains("no answer to t1 on handle 7"));
        assert_eq!(e.wait(8, "t1", Duration::from_millis(10)).unwrap()["sender"], 8);
        e.route(ev(9, Some("t2"), json!({})));
        e.forget(9);
        assert!(e.wait(9, "t2", Duration::from_millis(10)).is_err());
    }

    #[test]
    fn queues_of_unclaimed_events_are_bounded() {
        let e = Events::default();
        for i in 0..(MAX_QUEUED + 10) {
            e.route(json!({ "janus": "media", "sender": 3, "n": i }));
        }
        let s = e.lock();
        let q = &s.by_handle[&3];
        assert_eq!(q.len(), MAX_QUEUED);
        assert_eq!(q.front().unwrap()["n"], 10);
    }

    #[test]
    fn a_waiter_wakes_when_its_event_arrives_and_fails_on_hangup_or_lost_session() {
        let e = Arc::new(Events::default());
        let e2 = e.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            e2.route(ev(5, Some("tx"), json!({ "videoroom": "event", "started": "ok" })));
        });
        let start = Instant::now();
        assert_eq!(e.wait(5, "tx", Duration::from_secs(5)).unwrap()["plugindata"]["data"]["started"], "ok");
        assert!(start.elapsed() < Duration::from_secs(2));
        t.join().unwrap();

        e.route(json!({ "janus": "hangup", "sender": 6, "reason": "DTLS alert" }));
        assert_eq!(
            e.wait(6, "tx", Duration::from_secs(1)).unwrap_err(),
            "janus hung up the PeerConnection: DTLS alert"
        );

        let e2 = e.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            e2.fail("janus error 458: No such session 1".into());
        });
        let err = e.wait(5, "other", Duration::from_secs(5)).unwrap_err();
        assert_eq!(err, "janus session lost: janus error 458: No such session 1");
        t.join().unwrap();
    }

    #[test]
    fn janus_replies_and_errors_are_parsed() {
        let ok = json!({ "janus": "success", "transaction": "lt1", "data": { "id": 7077349546864369u64 } });
        assert_eq!(reply_id(&core_reply(ok).unwrap()).unwrap(), 7077349546864369);
        let err =
            json!({ "janus": "error", "transaction": "lt2", "error": { "code": 458, "reason": "No such session 12" } });
        assert_eq!(core_reply(err).unwrap_err(), "janus error 458: No such session 12");
        assert!(reply_id(&json!({ "janus": "success" })).is_err());

        let exists = json!({ "janus": "success", "sender": 3, "plugindata": { "plugin": PLUGIN,
            "data": { "videoroom": "event", "error_code": 427, "error": "Room 1234 already exists" } } });
        let e = plugin_data(&exists).unwrap_err();
        assert_eq!(e, "janus videoroom error 427: Room 1234 already exists");
        assert!(e.contains(&format!("videoroom error {ROOM_EXISTS}:")));
        let created = json!({ "janus": "success", "plugindata": { "plugin": PLUGIN,
            "data": { "videoroom": "created", "room": 1234, "permanent": false } } });
        assert_eq!(plugin_data(&created).unwrap()["videoroom"], "created");
        assert!(plugin_data(&json!({ "janus": "ack" })).is_err());

        let joined = json!({ "janus": "event", "transaction": "lt3", "sender": 9,
            "plugindata": { "plugin": PLUGIN, "data": { "videoroom": "joined", "id": 55 } },
            "jsep": { "type": "answer", "sdp": "v=0\r\n" } });
        assert_eq!(jsep_sdp(&joined, "answer").unwrap(), "v=0\r\n");
        assert_eq!(jsep_sdp(&joined, "offer").unwrap_err(), "janus: expected a jsep offer, got \"answer\"");
        assert!(jsep_sdp(&created, "offer").unwrap_err().starts_with("janus: no jsep offer in"));

        assert_eq!(classify(&joined, "lt3"), Fits::Reply);
        assert_eq!(classify(&joined, "lt4"), Fits::Other);
        assert_eq!(
            classify(&json!({ "janus": "detached", "sender": 9 }), "lt3"),
            Fits::Gone("janus detached the handle".into())
        );
        assert_eq!(classify(&json!({ "janus": "webrtcup", "sender": 9 }), "lt3"), Fits::Other);
    }

    #[test]
    fn long_poll_answers_are_parsed() {
        assert!(poll_events(br#"{"janus":"keepalive"}"#).unwrap().is_empty());
        let evs =
            poll_events(br#"[{"janus":"webrtcup","sender":1},{"janus":"keepalive"},{"janus":"event","sender":2}]"#)
                .unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1]["sender"], 2);
        assert_eq!(poll_events(br#"{"janus":"media","sender":4}"#).unwrap()[0]["sender"], 4);
        assert!(poll_events(b"<html>").is_err());
    }
}
