//! `yunshi-loadtest relay`: the raw limit. A WHIP/WHEP server with no SFU logic at all: every
//! RTP packet a room's publisher sends is written, unchanged (same sequence numbers and
//! timestamps, payload shared), to each of the room's viewers. What remains is the cost any
//! str0m-based SFU pays — receive, SRTP decrypt, per-viewer SRTP encrypt, send — with the same
//! batched UDP as yunshi (`sfu::udp_batch`). The load tool drives it exactly as it drives
//! yunshi, so the two are measured by the same harness on the same core.
//!
//! Not a product: no auth (any token), no layer selection, RED, FEC, allocation or metrics.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use sfu::udp_batch::{self, RecvBatch, SendBatch};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::peer::ABS_CAPTURE_TIME_ID;

type Reply = Sender<Result<(u64, String), String>>;

enum Command {
    Join { publish: bool, room: String, offer: String, reply: Reply },
    Leave { id: u64 },
}

struct RelayPeer {
    rtc: Rtc,
    /// Shared name: handing it around per packet is a reference count, not a copy.
    room: Rc<str>,
    publish: bool,
    mids: HashMap<Mid, MediaKind>,
    /// Publisher payload type → ours (viewers).
    pts: HashMap<Pt, Option<Pt>>,
    addrs: Vec<SocketAddr>,
    scheduled: Option<Instant>,
}

#[derive(Default)]
struct Room {
    publisher: Option<u64>,
    viewers: Vec<u64>,
}

struct Relay {
    socket: UdpSocket,
    candidate: SocketAddr,
    peers: HashMap<u64, RelayPeer>,
    by_addr: HashMap<SocketAddr, u64>,
    rooms: HashMap<Rc<str>, Room>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    send: SendBatch,
    next_id: u64,
}

/// Serve WHIP/WHEP on `http` and media on `media` (bound, and offered as the candidate).
pub fn run(http: SocketAddr, media: SocketAddr) -> std::io::Result<()> {
    let socket = UdpSocket::bind(media)?;
    udp_batch::grow_buffers(&socket, 8 << 20);
    let (tx, rx) = channel();
    std::thread::Builder::new().name("relay-media".into()).spawn(move || {
        // Built on its own thread: room names are `Rc`, never shared across threads.
        let mut relay = Relay {
            socket,
            candidate: media,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: HashMap::new(),
            timers: BinaryHeap::new(),
            send: SendBatch::default(),
            next_id: 1,
        };
        relay.run(rx)
    })?;
    let listener = TcpListener::bind(http)?;
    eprintln!("relay: HTTP on {http}, media on {media}");
    for stream in listener.incoming().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &tx);
        });
    }
    Ok(())
}

fn respond(s: &mut TcpStream, status: &str, headers: &str, body: &str) -> std::io::Result<()> {
    write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
}

fn serve(mut stream: TcpStream, tx: &Sender<Command>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0).min(1 << 20);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["healthz"]) => respond(&mut stream, "200 OK", "", "{}"),
        ("POST", ["api", "v1", "auth", "login"]) => respond(&mut stream, "200 OK", "", r#"{"token":"relay"}"#),
        ("POST", ["api", "v1", "rooms"]) => respond(&mut stream, "201 Created", "", "{}"),
        ("POST", [proto @ ("whip" | "whep"), room]) => {
            let (reply, answer) = channel();
            let offer = String::from_utf8_lossy(&body).into_owned();
            let publish = *proto == "whip";
            let _ = tx.send(Command::Join { publish, room: room.to_string(), offer, reply });
            match answer.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok((id, sdp))) => {
                    let loc = format!("Location: /{proto}/{room}/{id}\r\nContent-Type: application/sdp\r\n");
                    respond(&mut stream, "201 Created", &loc, &sdp)
                }
                Ok(Err(e)) => {
                    respond(&mut stream, "400 Bad Request", "", &format!(r#"{{"error":"bad_sdp","message":{e:?}}}"#))
                }
                Err(_) => respond(&mut stream, "503 Service Unavailable", "", "{}"),
            }
        }
        ("DELETE", ["whip" | "whep", _, id]) => {
            if let Ok(id) = id.parse() {
                let _ = tx.send(Command::Leave { id });
            }
            respond(&mut stream, "200 OK", "", "")
        }
        _ => respond(&mut stream, "404 Not Found", "", "{}"),
    }
}

impl Relay {
    fn run(&mut self, rx: Receiver<Command>) {
        let mut batch = Box::<RecvBatch>::default();
        loop {
            while let Ok(cmd) = rx.try_recv() {
                self.command(cmd);
            }
            let now = Instant::now();
            while let Some(&Reverse((at, id))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                let Some(p) = self.peers.get_mut(&id) else { continue };
                if p.scheduled != Some(at) {
                    continue;
                }
                p.scheduled = None;
                let _ = p.rtc.handle_input(Input::Timeout(now));
                self.drain(id);
            }
            let n = batch.recv(&self.socket).unwrap_or(0);
            for i in 0..n {
                if let Some((data, from)) = batch.get(i) {
                    self.datagram(data, from);
                }
            }
            self.send.flush(&self.socket);
            if n == 0 {
                let wait = self
                    .timers
                    .peek()
                    .map_or(Duration::from_millis(5), |Reverse((at, _))| at.saturating_duration_since(Instant::now()))
                    .min(Duration::from_millis(5));
                if !wait.is_zero() {
                    udp_batch::wait_readable(&self.socket, wait);
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Join { publish, room, offer, reply } => {
                let _ = reply.send(self.join(publish, room, &offer));
            }
            Command::Leave { id } => self.remove(id),
        }
    }

    fn join(&mut self, publish: bool, room: String, offer: &str) -> Result<(u64, String), String> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| e.to_string())?;
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(self.candidate, "udp").map_err(|e| e.to_string())?);
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
        let id = self.next_id;
        self.next_id += 1;
        let room: Rc<str> = room.into();
        let r = self.rooms.entry(room.clone()).or_default();
        if publish {
            r.publisher = Some(id);
        } else {
            r.viewers.push(id);
        }
        let peer = RelayPeer {
            rtc,
            room,
            publish,
            mids: HashMap::new(),
            pts: HashMap::new(),
            addrs: Vec::new(),
            scheduled: None,
        };
        self.peers.insert(id, peer);
        self.drain(id);
        Ok((id, answer.to_sdp_string()))
    }

    fn remove(&mut self, id: u64) {
        let Some(mut p) = self.peers.remove(&id) else { return };
        p.rtc.disconnect();
        for a in &p.addrs {
            self.by_addr.remove(a);
        }
        if let Some(r) = self.rooms.get_mut(&p.room) {
            r.viewers.retain(|v| *v != id);
            if r.publisher == Some(id) {
                r.publisher = None;
            }
        }
    }

    fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        let Ok(contents) = data.try_into() else { return };
        let input = Input::Receive(
            Instant::now(),
            Receive { proto: Protocol::Udp, source: from, destination: self.candidate, contents },
        );
        let id = match self.by_addr.get(&from) {
            Some(id) => *id,
            None => {
                let Some(id) = self.peers.iter().find(|(_, p)| p.rtc.accepts(&input)).map(|(id, _)| *id) else {
                    return;
                };
                self.by_addr.insert(from, id);
                if let Some(p) = self.peers.get_mut(&id) {
                    p.addrs.push(from);
                }
                id
            }
        };
        if let Some(p) = self.peers.get_mut(&id) {
            let _ = p.rtc.handle_input(input);
        }
        self.drain(id);
    }

    /// Poll until quiet; str0m's "send now" timeouts are handled at once (as in yunshi).
    fn drain(&mut self, id: u64) {
        let mut immediate = false;
        loop {
            let Some(p) = self.peers.get_mut(&id) else { return };
            match p.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.send.push(&self.socket, t.contents.into(), t.destination),
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    if !immediate && t <= now {
                        immediate = true;
                        let _ = p.rtc.handle_input(Input::Timeout(now));
                        continue;
                    }
                    if p.scheduled.is_none_or(|s| t < s) {
                        p.scheduled = Some(t);
                        self.timers.push(Reverse((t, id)));
                    }
                    return;
                }
                Ok(Output::Event(e)) => match e {
                    Event::MediaAdded(m) => {
                        p.mids.insert(m.mid, m.kind);
                    }
                    Event::Connected if !p.publish => {
                        let room = p.room.clone();
                        self.ask_keyframe(&room);
                    }
                    Event::KeyframeRequest(_) => {
                        let room = p.room.clone();
                        self.ask_keyframe(&room);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.remove(id);
                        return;
                    }
                    Event::RtpPacket(pkt) if p.publish => {
                        let kind =
                            p.rtc.direct_api().stream_rx(&pkt.header.ssrc).and_then(|s| p.mids.get(&s.mid()).copied());
                        let params =
                            p.rtc.codec_config().params().iter().find(|c| c.pt() == pkt.header.payload_type).copied();
                        let room = p.room.clone();
                        if let (Some(kind), Some(params)) = (kind, params) {
                            self.relay(&room, kind, params, &pkt);
                        }
                    }
                    _ => {}
                },
                Err(_) => {
                    self.remove(id);
                    return;
                }
            }
        }
    }

    fn ask_keyframe(&mut self, room: &str) {
        let Some(pid) = self.rooms.get(room).and_then(|r| r.publisher) else { return };
        let Some(p) = self.peers.get_mut(&pid) else { return };
        let Some(mid) = p.mids.iter().find(|(_, k)| **k == MediaKind::Video).map(|(m, _)| *m) else {
            return;
        };
        if let Some(rx) = p.rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.drain(pid);
    }

    /// The packet, as it came, to every viewer of the room.
    fn relay(&mut self, room: &str, kind: MediaKind, params: str0m::format::PayloadParams, pkt: &RtpPacket) {
        // The list is borrowed out of the room while we write (no copy per packet).
        let Some(viewers) = self.rooms.get_mut(room).map(|r| std::mem::take(&mut r.viewers)) else {
            return;
        };
        let exts = ExtensionValues { abs_capture_time: pkt.header.ext_vals.abs_capture_time, ..Default::default() };
        for &v in &viewers {
            let Some(peer) = self.peers.get_mut(&v) else { continue };
            let pt = *peer
                .pts
                .entry(params.pt())
                .or_insert_with(|| peer.rtc.codec_config().match_params(params).map(|p| p.pt()));
            let Some(pt) = pt else { continue };
            let Some(mid) = peer.mids.iter().find(|(_, k)| **k == kind).map(|(m, _)| *m) else { continue };
            let mut api = peer.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else { continue };
            let w = RtpWrite::new(pt, pkt.seq_no, pkt.header.timestamp, pkt.timestamp, pkt.payload.clone())
                .marker(pkt.header.marker)
                .ext_vals(exts.clone())
                .nackable(kind == MediaKind::Video);
            tx.write_rtp(w);
            self.drain(v);
        }
        if let Some(r) = self.rooms.get_mut(room) {
            // Viewers that joined meanwhile stay; those removed while we wrote go.
            let joined = std::mem::replace(&mut r.viewers, viewers);
            r.viewers.extend(joined);
            let peers = &self.peers;
            r.viewers.retain(|v| peers.contains_key(v));
        }
    }
}
