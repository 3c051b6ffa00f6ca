//! One synthetic WebRTC endpoint: a str0m `Rtc` on its own UDP socket, either publishing the
//! shared encoded media or receiving and accounting what arrives. Driven by a worker thread
//! (`worker`), never blocking.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{AbsCaptureTime, Extension, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::h264;
use crate::histogram::Histogram;
use crate::media::{AudioClip, VideoLayer, AUDIO_FRAME, AUDIO_FRAME_SAMPLES};
use crate::stream_stats::{record_latency, StreamStats};

/// abs-capture-time's id in our offers (the SFU carries it end to end).
pub const ABS_CAPTURE_TIME_ID: u8 = 9;
/// Simulcast RIDs, lowest first, as browsers name them.
pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// What every publisher sends (encoded once, shared).
#[derive(Debug)]
pub struct Media {
    pub video: Vec<VideoLayer>,
    pub audio: AudioClip,
    pub fps: u32,
}

/// Per-worker measurements that receivers add to as packets arrive.
#[derive(Default, Clone)]
pub struct Latency {
    pub video: Histogram,
    pub audio: Histogram,
    /// Packets that carried no capture time, or one in the future.
    pub unstamped: u64,
    /// Video delay beyond each stream's fastest packet (needs no capture time: comparable
    /// across servers that do not carry abs-capture-time).
    pub video_over_fastest: Histogram,
}

pub struct Publisher {
    media: Arc<Media>,
    audio_mid: Mid,
    video_mid: Mid,
    rids: Vec<Option<Rid>>,
    /// Next frame index per layer.
    position: Vec<usize>,
    video_n: u64,
    audio_n: u64,
    next_video: Option<Instant>,
    next_audio: Option<Instant>,
    pub keyframe_requests: u64,
    pub frames_sent: u64,
    /// Where in the frame interval this publisher's frames fall (0..1): publishers started
    /// together would otherwise all send at the same instant, which no set of real cameras does.
    phase: f64,
}

pub struct ReceivedStream {
    pub kind: MediaKind,
    pub stats: StreamStats,
    /// The capture time of the frame being received (RTP timestamp, instant): senders stamp
    /// only a frame's first packet, as libwebrtc does; its other packets share it.
    capture: Option<(u32, SystemTime)>,
}

pub struct Subscriber {
    pub streams: HashMap<Ssrc, ReceivedStream>,
    /// Payload types that carry H.264 (the others are audio or repair).
    h264_pts: Vec<Pt>,
}

pub enum Role {
    Publisher(Box<Publisher>),
    Subscriber(Box<Subscriber>),
}

pub struct LoadPeer {
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pub role: Role,
    pending: Option<SdpPendingOffer>,
    /// When its signalling began (the WHIP/WHEP POST or the join): join time is measured from here.
    pub signalled_at: Instant,
    pub connected_at: Option<Instant>,
    pub failed: Option<String>,
    pub send_errors: u64,
}

fn bind(ip: IpAddr) -> std::io::Result<(UdpSocket, SocketAddr)> {
    let socket = UdpSocket::bind((ip, 0))?;
    socket.set_nonblocking(true)?;
    crate::udp_recv::enable_timestamps(&socket)?;
    let local = socket.local_addr()?;
    Ok((socket, local))
}

fn builder(rtp_mode: bool, red: bool) -> str0m::RtcConfig {
    Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, red)
        .set_rtp_mode(rtp_mode)
        .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime)
}

impl LoadPeer {
    fn new(rtc: Rtc, socket: UdpSocket, local: SocketAddr, role: Role) -> LoadPeer {
        LoadPeer {
            rtc,
            socket,
            local,
            role,
            pending: None,
            signalled_at: Instant::now(),
            connected_at: None,
            failed: None,
            send_errors: 0,
        }
    }

    /// Endpoints bind a UDP socket on `ip` (loopback, or the address a server in a network
    /// namespace can reach) and offer it as their host candidate.
    ///
    /// A publisher of audio and `media.video.len()` simulcast encodings (one: no simulcast).
    pub fn publisher(media: Arc<Media>, ip: IpAddr) -> std::io::Result<(LoadPeer, String)> {
        let (socket, local) = bind(ip)?;
        let mut rtc = builder(false, false).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(std::io::Error::other)?);
        let layers = media.video.len();
        let sim = (layers > 1).then(|| {
            let mut s = Simulcast::new();
            for rid in &RIDS[..layers] {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let mut api = rtc.sdp_api();
        let audio_mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video_mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim);
        let (offer, pending) = api.apply().ok_or_else(|| std::io::Error::other("no offer"))?;
        let rids = if layers > 1 { RIDS[..layers].iter().map(|r| Some(Rid::from(*r))).collect() } else { vec![None] };
        let publisher = Publisher {
            position: vec![0; rids.len()],
            media,
            audio_mid,
            video_mid,
            rids,
            video_n: 0,
            audio_n: 0,
            next_video: None,
            next_audio: None,
            keyframe_requests: 0,
            frames_sent: 0,
            // A fixed spread from the port (no RNG needed): golden-ratio steps fill 0..1 evenly.
            phase: (local.port() as f64 * 0.618_033_988_75).fract(),
        };
        let mut peer = LoadPeer::new(rtc, socket, local, Role::Publisher(Box::new(publisher)));
        peer.pending = Some(pending);
        Ok((peer, offer.to_sdp_string()))
    }

    fn subscriber_role() -> Role {
        Role::Subscriber(Box::new(Subscriber { streams: HashMap::new(), h264_pts: Vec::new() }))
    }

    /// A WHEP-style viewer: offers to receive audio and video. `red`: negotiate RFC 2198 audio.
    pub fn viewer(red: bool, ip: IpAddr) -> std::io::Result<(LoadPeer, String)> {
        let (socket, local) = bind(ip)?;
        let mut rtc = builder(true, red).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(std::io::Error::other)?);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or_else(|| std::io::Error::other("no offer"))?;
        let mut peer = LoadPeer::new(rtc, socket, local, Self::subscriber_role());
        peer.pending = Some(pending);
        Ok((peer, offer.to_sdp_string()))
    }

    /// A conference subscribe connection: the server offers, this answers (again on every
    /// renegotiation, through `answer`).
    pub fn answerer(red: bool, ip: IpAddr) -> std::io::Result<LoadPeer> {
        let (socket, local) = bind(ip)?;
        let mut rtc = builder(true, red).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(std::io::Error::other)?);
        Ok(LoadPeer::new(rtc, socket, local, Self::subscriber_role()))
    }

    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("bad answer: {e}"))?;
        let pending = self.pending.take().ok_or("no offer pending")?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| format!("answer refused: {e}"))
    }

    pub fn answer(&mut self, sdp: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("bad offer: {e}"))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| format!("offer refused: {e}"))?;
        Ok(answer.to_sdp_string())
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Feed one datagram and everything it causes; returns when the endpoint next wants time.
    /// `arrived`: the kernel's receive time, for latency (None: now).
    pub fn receive(
        &mut self,
        now: Instant,
        arrived: Option<SystemTime>,
        from: SocketAddr,
        data: &[u8],
        lat: &mut Latency,
    ) -> Instant {
        let Ok(contents) = data.try_into() else {
            return now + Duration::from_millis(1);
        };
        let input =
            Input::Receive(now, Receive { proto: Protocol::Udp, source: from, destination: self.local, contents });
        if let Err(e) = self.rtc.handle_input(input) {
            self.failed.get_or_insert(format!("input: {e}"));
        }
        self.run(now, arrived, lat)
    }

    /// Let time pass: send media that is due, then str0m's timers.
    pub fn tick(&mut self, now: Instant, lat: &mut Latency) -> Instant {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.failed.get_or_insert(format!("timeout: {e}"));
        }
        self.run(now, None, lat)
    }

    fn run(&mut self, now: Instant, arrived: Option<SystemTime>, lat: &mut Latency) -> Instant {
        if self.connected_at.is_some() {
            if let Role::Publisher(p) = &mut self.role {
                p.send_due(&mut self.rtc, now);
            }
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    if self.socket.send_to(&t.contents, t.destination).is_err() {
                        self.send_errors += 1;
                    }
                }
                Ok(Output::Timeout(t)) => {
                    let media = match &self.role {
                        Role::Publisher(p) => p.next_due(),
                        Role::Subscriber(_) => None,
                    };
                    return media.map_or(t, |m| m.min(t));
                }
                Ok(Output::Event(e)) => self.on_event(e, now, arrived, lat),
                Err(e) => {
                    self.failed.get_or_insert(format!("rtc: {e}"));
                    return now + Duration::from_secs(3600);
                }
            }
        }
    }

    fn on_event(&mut self, e: Event, now: Instant, arrived: Option<SystemTime>, lat: &mut Latency) {
        match e {
            Event::Connected => {
                self.connected_at.get_or_insert(now);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed.get_or_insert("ice disconnected".into());
            }
            Event::KeyframeRequest(req) => {
                if let Role::Publisher(p) = &mut self.role {
                    p.keyframe_request(req.rid);
                }
            }
            Event::RtpPacket(pkt) => {
                let Role::Subscriber(s) = &mut self.role else { return };
                let ssrc = pkt.header.ssrc;
                #[allow(clippy::map_entry)] // the entry would borrow `s` across self.rtc
                if !s.streams.contains_key(&ssrc) {
                    let mid = self.rtc.direct_api().stream_rx(&ssrc).map(|st| st.mid());
                    let kind = mid.and_then(|m| self.rtc.media(m)).map_or(MediaKind::Video, |m| m.kind());
                    let rate = if kind == MediaKind::Audio { 48_000 } else { 90_000 };
                    s.streams.insert(ssrc, ReceivedStream { kind, stats: StreamStats::new(rate), capture: None });
                    s.h264_pts = self
                        .rtc
                        .codec_config()
                        .params()
                        .iter()
                        .filter(|p| p.spec().codec == Codec::H264)
                        .map(|p| p.pt())
                        .collect();
                }
                let Some(stream) = s.streams.get_mut(&ssrc) else { return };
                if !stream.stats.on_packet(*pkt.seq_no, pkt.header.timestamp, pkt.payload.len(), now) {
                    return;
                }
                let arrived = arrived.unwrap_or_else(SystemTime::now);
                if stream.kind == MediaKind::Video {
                    let d = stream.stats.delay_over_fastest(pkt.time.numer(), arrived);
                    lat.video_over_fastest.record(d);
                }
                let hist = if stream.kind == MediaKind::Audio { &mut lat.audio } else { &mut lat.video };
                let ts = pkt.header.timestamp;
                let captured = match pkt.header.ext_vals.abs_capture_time {
                    Some(c) => {
                        stream.capture = Some((ts, c.capture_time));
                        Some(c.capture_time)
                    }
                    None => stream.capture.filter(|(t, _)| *t == ts).map(|(_, c)| c),
                };
                match captured {
                    Some(c) if record_latency(hist, c, arrived) => {}
                    _ => lat.unstamped += 1,
                }
                if stream.kind == MediaKind::Video && s.h264_pts.contains(&pkt.header.payload_type) {
                    let info = h264::inspect(&pkt.payload);
                    if info.keyframe {
                        stream.stats.on_keyframe(now, info.resolution);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn publisher_stats(&self) -> Option<&Publisher> {
        match &self.role {
            Role::Publisher(p) => Some(p),
            Role::Subscriber(_) => None,
        }
    }

    pub fn subscriber_stats(&self) -> Option<&Subscriber> {
        match &self.role {
            Role::Subscriber(s) => Some(s),
            Role::Publisher(_) => None,
        }
    }
}

/// The next send time on the media clock, unless the sender is over a second behind it (a
/// stall), in which case from now: no catch-up burst of a second's frames.
fn keep_cadence(next: Instant, now: Instant) -> Instant {
    if now.saturating_duration_since(next) > Duration::from_secs(1) {
        now
    } else {
        next
    }
}

impl Publisher {
    fn next_due(&self) -> Option<Instant> {
        match (self.next_video, self.next_audio) {
            (Some(v), Some(a)) => Some(v.min(a)),
            (v, a) => v.or(a),
        }
    }

    fn keyframe_request(&mut self, rid: Option<Rid>) {
        self.keyframe_requests += 1;
        for (i, r) in self.rids.iter().enumerate() {
            if rid.is_none() || *r == rid {
                // Jump to the next IDR as an encoder would encode one now; already at one: stay.
                let layer = &self.media.video[i];
                self.position[i] = layer.next_idr(self.position[i] % layer.frames.len());
            }
        }
    }

    fn send_due(&mut self, rtc: &mut Rtc, now: Instant) {
        let capture = AbsCaptureTime { capture_time: SystemTime::now(), clock_offset: None };
        let frame_interval = Duration::from_secs(1) / self.media.fps.max(1);
        let next_video = *self.next_video.get_or_insert_with(|| now + frame_interval.mul_f64(self.phase));
        if now >= next_video {
            let ts = MediaTime::new(self.video_n * 90_000 / self.media.fps.max(1) as u64, Frequency::NINETY_KHZ);
            for (i, rid) in self.rids.iter().enumerate() {
                let layer = &self.media.video[i];
                let frame = layer.frames[self.position[i] % layer.frames.len()].clone();
                self.position[i] = (self.position[i] + 1) % layer.frames.len();
                let Some(writer) = rtc.writer(self.video_mid) else { continue };
                let pt = writer.payload_params().find(|p| p.spec().codec == Codec::H264).map(|p| p.pt());
                let Some(pt) = pt else { continue };
                let mut writer = writer.abs_capture_time(capture);
                if let Some(rid) = rid {
                    writer = writer.rid(*rid);
                }
                if writer.write(pt, now, ts, frame).is_ok() {
                    self.frames_sent += 1;
                }
            }
            self.video_n += 1;
            // Keep to the media clock (receivers measure delay against it); only after a long
            // stall start afresh from now.
            self.next_video = Some(keep_cadence(next_video + frame_interval, now));
        }
        let next_audio = *self.next_audio.get_or_insert_with(|| now + AUDIO_FRAME.mul_f64(self.phase));
        if now >= next_audio {
            let clip = &self.media.audio.frames;
            let frame = clip[(self.audio_n as usize) % clip.len()].clone();
            let ts = MediaTime::new(self.audio_n * AUDIO_FRAME_SAMPLES as u64, Frequency::FORTY_EIGHT_KHZ);
            if let Some(writer) = rtc.writer(self.audio_mid) {
                let pt = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt());
                if let Some(pt) = pt {
                    let _ = writer.abs_capture_time(capture).write(pt, now, ts, frame);
                }
            }
            self.audio_n += 1;
            self.next_audio = Some(keep_cadence(next_audio + AUDIO_FRAME, now));
        }
    }
}
