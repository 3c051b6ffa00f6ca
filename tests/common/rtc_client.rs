//! A WebRTC endpoint for tests, built on str0m in RTP mode over a real UDP socket: it
//! publishes synthetic Opus and VP8 packets (WHIP) or receives them (WHEP) through the server.
//!
//! Payloads carry a counter and a pattern derived from it, so a receiver can check every byte
//! arrived intact and in order.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::Frequency;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

pub const VIDEO_PAYLOAD: usize = 900;
pub const AUDIO_PAYLOAD: usize = 120;

/// Two leading bytes that make a payload a keyframe or a delta frame of `codec` as far as the
/// SFU can tell: VP8 descriptor (S=1, PID=0) + frame header P bit; H.264 single NAL unit
/// header (IDR type 5 or non-IDR slice type 1).
/// What a synthetic payload starts with: enough of the codec's own header for the server to
/// tell keyframes apart, and for a VP8 keyframe its frame header with a picture size, as a
/// real encoder's (180, 360 and 720 lines for simulcast streams 0, 1 and 2), so the server
/// learns each stream's size.
fn video_prefix(codec: Codec, keyframe: bool, counter: u64) -> Vec<u8> {
    match (codec, keyframe) {
        (Codec::H264, true) => vec![0x65, 0x88],
        (Codec::H264, false) => vec![0x41, 0x9a],
        (_, true) => {
            let height: u16 = 180 << stream_of(counter).min(2);
            let width = height / 9 * 16;
            let mut p = vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
            p.extend_from_slice(&width.to_le_bytes());
            p.extend_from_slice(&height.to_le_bytes());
            p
        }
        (_, false) => vec![0x10, 0x01],
    }
}

/// A synthetic video payload: the codec prefix, an 8-byte counter and a counter-derived pattern.
pub fn video_payload(codec: Codec, counter: u64, keyframe: bool) -> Vec<u8> {
    let mut p = video_prefix(codec, keyframe, counter);
    let pattern = VIDEO_PAYLOAD - p.len() - 8;
    p.extend_from_slice(&counter.to_be_bytes());
    p.extend((0..pattern).map(|i| (counter as u8).wrapping_mul(31).wrapping_add(i as u8)));
    p
}

pub fn opus_payload(counter: u64) -> Vec<u8> {
    let mut p = counter.to_be_bytes().to_vec();
    p.extend((0..AUDIO_PAYLOAD - 8).map(|i| (counter as u8).wrapping_mul(17).wrapping_add(i as u8)));
    p
}

/// Check a received video payload; returns its counter and keyframe flag if intact.
pub fn check_video(p: &[u8]) -> Option<(u64, bool)> {
    if p.len() != VIDEO_PAYLOAD {
        return None;
    }
    for codec in [Codec::Vp8, Codec::H264] {
        for key in [true, false] {
            let at = video_prefix(codec, key, 0).len();
            let counter = u64::from_be_bytes(p.get(at..at + 8)?.try_into().ok()?);
            if video_payload(codec, counter, key) == p {
                return Some((counter, key));
            }
        }
    }
    None
}

pub fn check_opus(p: &[u8]) -> Option<u64> {
    if p.len() != AUDIO_PAYLOAD {
        return None;
    }
    let counter = u64::from_be_bytes(p[0..8].try_into().ok()?);
    (opus_payload(counter) == p).then_some(counter)
}

#[derive(Debug, Clone)]
pub enum Received {
    Video {
        counter: u64,
        keyframe: bool,
        at: Instant,
    },
    Audio {
        counter: u64,
        at: Instant,
    },
    /// An audio packet that arrived as RED; `counter` is its primary frame's, `earlier` the
    /// counters of the redundant copies it carried.
    RedAudio {
        counter: u64,
        redundant: usize,
        earlier: Vec<u64>,
    },
    Corrupt,
    /// ICE and DTLS are up; the SRTP profile DTLS chose.
    Connected {
        srtp: Option<str0m::crypto::dtls::SrtpProfile>,
    },
}

pub struct Endpoint {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    audio_mid: Mid,
    video_mid: Mid,
    /// Simulcast RIDs, lowest first; empty for a single stream.
    rids: Vec<Rid>,
}

/// RIDs a simulcast publisher uses, lowest quality first (as browsers list them).
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];

/// Stream index carried in the top byte of a video counter, so a viewer can tell which
/// simulcast stream a packet came from.
pub fn stream_of(counter: u64) -> u8 {
    (counter >> 56) as u8
}

impl Endpoint {
    /// Offer sendonly (publisher) or recvonly (viewer) audio + video.
    pub fn offer(send: bool) -> (Endpoint, String) {
        Self::offer_with(send, false)
    }

    /// `simulcast`: publish video as three RID streams.
    pub fn offer_with(send: bool, simulcast: bool) -> (Endpoint, String) {
        Self::offer_opts(send, simulcast, false)
    }

    /// `red`: negotiate Opus with RFC 2198 redundancy (a publisher then sends every frame
    /// with a copy of the previous one, as Chrome does).
    pub fn offer_opts(send: bool, simulcast: bool, red: bool) -> (Endpoint, String) {
        Self::offer_with_opus_pt(send, simulcast, red, 111)
    }

    /// As `offer_opts`, with Opus on payload type `opus_pt` (Firefox uses 109, Chrome 111).
    pub fn offer_with_opus_pt(send: bool, simulcast: bool, red: bool, opus_pt: u8) -> (Endpoint, String) {
        Self::offer_on("127.0.0.1", send, simulcast, red, opus_pt)
    }

    /// As `offer_with_opus_pt`, on the local address `ip` (a namespace's veth, to reach a
    /// server inside it).
    pub fn offer_on(ip: &str, send: bool, simulcast: bool, red: bool, opus_pt: u8) -> (Endpoint, String) {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        let local = socket.local_addr().unwrap();
        let mut builder = Rtc::builder().set_rtp_mode(true).enable_opus(false, false);
        let opus = FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() };
        builder.codec_config().add_config(opus_pt.into(), None, Codec::Opus, Frequency::FORTY_EIGHT_KHZ, Some(2), opus);
        if red {
            builder.codec_config().set_red_pt(Codec::Opus, 63.into());
        }
        let mut rtc = builder.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let dir = if send { Direction::SendOnly } else { Direction::RecvOnly };
        let mut api = rtc.sdp_api();
        let audio_mid = api.add_media(MediaKind::Audio, dir, None, None, None);
        let sim = simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in SIMULCAST_RIDS {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video_mid = api.add_media(MediaKind::Video, dir, None, None, sim);
        let (offer, pending) = api.apply().unwrap();
        let rids = if simulcast { SIMULCAST_RIDS.iter().map(|r| Rid::from(*r)).collect() } else { vec![] };
        (Endpoint { rtc, socket, local, pending: Some(pending), audio_mid, video_mid, rids }, offer.to_sdp_string())
    }

    pub fn accept_answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("server answer parses");
        self.rtc.sdp_api().accept_answer(self.pending.take().unwrap(), answer).expect("answer accepted");
    }

    /// Drive the endpoint for `duration`: publish if `publish`, and report received packets.
    /// Keyframes are sent every `keyframe_every` frames and whenever the server asks.
    pub fn run(
        mut self,
        duration: Duration,
        publish: Option<Codec>,
        keyframe_every: u64,
        out: mpsc::Sender<Received>,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let (audio_mid, video_mid) = (self.audio_mid, self.video_mid);
            let pt_of = |rtc: &Rtc, codec: Codec| {
                rtc.codec_config().params().iter().find(|p| p.spec().codec == codec).map(|p| p.pt())
            };
            let start = Instant::now();
            let mut buf = vec![0u8; 2000];
            let mut connected = false;
            let (mut next_audio, mut next_video) = (start, start);
            let (mut audio_n, mut video_n) = (0u64, 0u64);
            let streams: Vec<Option<Rid>> =
                if self.rids.is_empty() { vec![None] } else { self.rids.iter().copied().map(Some).collect() };
            let mut want_key = vec![true; streams.len()];
            self.socket.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
            while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                // Drain output.
                let timeout = loop {
                    match self.rtc.poll_output() {
                        Ok(Output::Timeout(t)) => break t,
                        Ok(Output::Transmit(t)) => {
                            let _ = self.socket.send_to(&t.contents, t.destination);
                        }
                        Ok(Output::Event(e)) => match e {
                            Event::Connected => {
                                connected = true;
                                let _ = out.send(Received::Connected { srtp: self.rtc.srtp_profile() });
                            }
                            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return,
                            Event::KeyframeRequest(r) => {
                                let i = streams.iter().position(|s| *s == r.rid).unwrap_or(0);
                                want_key[i] = true;
                            }
                            Event::RtpPacket(p) => {
                                let at = Instant::now();
                                let red_pt = self.rtc.codec_config().params().iter().find_map(|c| c.red());
                                let opus_pt = self
                                    .rtc
                                    .codec_config()
                                    .params()
                                    .iter()
                                    .find(|c| c.spec().codec == Codec::Opus)
                                    .map(|c| *c.pt());
                                let r = if Some(p.header.payload_type) == red_pt {
                                    match sfu::red::parse(&p.payload) {
                                        // Every block must name our Opus payload type.
                                        Some((blocks, n))
                                            if blocks[..n].iter().any(|b| b.as_ref().map(|b| b.pt) != opus_pt) =>
                                        {
                                            Received::Corrupt
                                        }
                                        Some((blocks, n)) => {
                                            let frames: Vec<Option<u64>> = blocks[..n]
                                                .iter()
                                                .map(|b| b.clone().and_then(|b| check_opus(&p.payload[b.range])))
                                                .collect();
                                            match (frames.iter().all(|f| f.is_some()), frames[n - 1]) {
                                                (true, Some(counter)) => Received::RedAudio {
                                                    counter,
                                                    redundant: n - 1,
                                                    earlier: frames[..n - 1].iter().flatten().copied().collect(),
                                                },
                                                _ => Received::Corrupt,
                                            }
                                        }
                                        None => Received::Corrupt,
                                    }
                                } else if let Some((counter, keyframe)) = check_video(&p.payload) {
                                    Received::Video { counter, keyframe, at }
                                } else if let Some(counter) = check_opus(&p.payload) {
                                    Received::Audio { counter, at }
                                } else {
                                    Received::Corrupt
                                };
                                let _ = out.send(r);
                            }
                            _ => {}
                        },
                        Err(e) => panic!("client rtc failed: {e}"),
                    }
                };
                let now = Instant::now();
                if let (Some(video_codec), true) = (publish, connected) {
                    if now >= next_audio {
                        if let Some(pt) = pt_of(&self.rtc, Codec::Opus) {
                            let red_pt = self.rtc.codec_config().params().iter().find_map(|c| c.red());
                            let payload = match red_pt {
                                // RED: this frame plus a copy of the previous one.
                                Some(_) if audio_n > 0 => {
                                    let prev = opus_payload(audio_n - 1);
                                    let mut out = Vec::new();
                                    sfu::red::pack(*pt, &opus_payload(audio_n), &[(960, &prev)], &mut out);
                                    out
                                }
                                Some(_) => {
                                    let mut out = Vec::new();
                                    sfu::red::pack(*pt, &opus_payload(audio_n), &[], &mut out);
                                    out
                                }
                                None => opus_payload(audio_n),
                            };
                            let mut api = self.rtc.direct_api();
                            if let Some(tx) = api.stream_tx_by_mid(audio_mid, None) {
                                tx.write_rtp(RtpWrite::new(
                                    red_pt.unwrap_or(pt),
                                    (audio_n + 1).into(),
                                    (audio_n * 960) as u32,
                                    now,
                                    payload,
                                ));
                                audio_n += 1;
                            }
                        }
                        next_audio += Duration::from_millis(20);
                    }
                    if now >= next_video {
                        if let Some(pt) = pt_of(&self.rtc, video_codec) {
                            let mut api = self.rtc.direct_api();
                            for (i, rid) in streams.iter().enumerate() {
                                let key = want_key[i] || (keyframe_every > 0 && video_n % keyframe_every == 0);
                                let Some(tx) = api.stream_tx_by_mid(video_mid, *rid) else { continue };
                                // Each stream numbers its packets itself, like a real encoder.
                                let counter = ((i as u64) << 56) | video_n;
                                tx.write_rtp(
                                    RtpWrite::new(
                                        pt,
                                        (video_n + 1).into(),
                                        (video_n * 3000) as u32,
                                        now,
                                        video_payload(video_codec, counter, key),
                                    )
                                    .marker(true)
                                    .nackable(true),
                                );
                                want_key[i] = false;
                            }
                            video_n += 1;
                        }
                        next_video += Duration::from_millis(33);
                    }
                }
                let wait = timeout
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(2))
                    .max(Duration::from_micros(200));
                self.socket.set_read_timeout(Some(wait)).unwrap();
                let input = match self.socket.recv_from(&mut buf) {
                    Ok((n, source)) => match buf[..n].try_into() {
                        Ok(contents) => Input::Receive(
                            Instant::now(),
                            Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                        ),
                        Err(_) => continue,
                    },
                    Err(_) => Input::Timeout(Instant::now()),
                };
                self.rtc.handle_input(input).expect("client input");
            }
        })
    }
}
