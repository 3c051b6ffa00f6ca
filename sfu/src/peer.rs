//! One str0m peer connection on a worker, and its SDP negotiation state.
//!
//! A subscribe connection is renegotiated by the server whenever its set of tracks changes.
//! Only one offer is outstanding at a time: changes that arrive meanwhile are queued and go
//! out in the next offer, after the client's answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::PayloadParams;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::rtp::{Extension, Ssrc};
use str0m::{Candidate, Rtc};

use crate::command::{PeerKind, SfuError};
use crate::dd_extension;
use crate::fast_map::FastMap;
use crate::forward::{Constraint, TrackKind};
use crate::ids::{PeerId, RoomId, TrackId};
use crate::repair;
use crate::sdp_fec::{self, FecPts};

/// A send m-line of this peer and what feeds it.
#[derive(Debug)]
pub struct Slot {
    pub kind: TrackKind,
    pub track: Option<TrackId>,
    /// The remote has accepted this m-line (answer applied, or it came in the remote's offer).
    pub negotiated: bool,
    /// Registered with the forwarder (needs `negotiated` and a connected transport).
    pub active: bool,
    /// Our payload types for the source's codec (and its RED, when negotiated), found once
    /// per source.
    pub pt: Option<(Pt, Option<Pt>)>,
    /// Audio: earlier frames repeated in each RED payload, from this receiver's measured loss.
    pub red_depth: usize,
    /// When `red_depth` last changed.
    pub red_changed: Option<Instant>,
    /// Video with ULPFEC: media packets written since the last parity packets.
    pub fec_media: usize,
    /// A cascade link's m-line for a simulcast track sends every stream on, under the
    /// source's RIDs (index = stream index); empty for one stream.
    pub rids: Vec<Rid>,
    /// The highest of them the link's far end watches, when it said so (kept here too: it may
    /// say so before the m-line is live).
    pub link_top: Option<u8>,
}

impl Slot {
    pub fn new(kind: TrackKind, track: Option<TrackId>, negotiated: bool) -> Self {
        Self {
            kind,
            track,
            negotiated,
            active: false,
            pt: None,
            red_depth: 0,
            red_changed: None,
            fec_media: 0,
            rids: Vec::new(),
            link_top: None,
        }
    }

    /// The RID to write output stream `stream` on (`None`: the m-line's one stream).
    pub fn rid(&self, stream: u8) -> Option<Rid> {
        self.rids.get(stream as usize).copied()
    }
}

/// A subscription waiting for the next offer.
#[derive(Debug)]
pub struct WantedTrack {
    pub track: TrackId,
    pub kind: TrackKind,
    pub stream_id: String,
    /// Send every simulcast stream of the source under these RIDs (a cascade link).
    pub rids: Vec<Rid>,
}

pub struct Peer {
    pub id: PeerId,
    pub room: RoomId,
    pub kind: PeerKind,
    /// An end of a cascade link (its subscriptions take every simulcast stream).
    pub on_link: bool,
    pub rtc: Rtc,
    pub connected: bool,
    pub remote_addrs: Vec<SocketAddr>,
    /// A dialling peer (a cascade link's child end) has a UDP socket of its own, as a browser
    /// has one per connection: two nodes keep several connections between them (each room,
    /// each direction), which one socket pair could not tell apart.
    pub own_socket: Option<std::net::UdpSocket>,
    /// Earliest timeout of this peer currently in the worker's heap.
    pub scheduled: Option<Instant>,
    pub next_timeout: Instant,
    /// Published tracks by receive m-line.
    pub published: FastMap<Mid, TrackId>,
    /// Receive SSRC to (track, simulcast stream index), learnt from each SSRC's first packet.
    pub ssrc_tracks: FastMap<Ssrc, (TrackId, u8)>,
    /// Send m-lines.
    pub slots: FastMap<Mid, Slot>,
    pub pending_offer: Option<(SdpPendingOffer, Vec<Mid>)>,
    pub wanted: Vec<WantedTrack>,
    pub unwanted: Vec<Mid>,
    /// Cumulative NACK counters from str0m's stats, to report deltas.
    pub nacks_seen: HashMap<(Mid, bool), u64>,
    /// The send-side bandwidth estimates towards this peer (bits/s) of the last moments: the
    /// latest, and the lowest that held, so layers are raised only on one that held.
    pub estimates: crate::allocate::EstimateHistory,
    /// The rate last asked of str0m's estimator (bits/s; changed only by more than 20 %).
    pub bwe_wanted: u64,
    /// The last allocation gave some video less than its tile wants (or paused it): loss
    /// on this link is likely congestion, and repair must not add to it.
    pub bandwidth_limited: bool,
    /// While loss is congestion: the audio redundancy (RED blocks per audio track) the estimate
    /// affords after base audio and the video granted (see `Worker::allocate`); `None` otherwise.
    pub red_room: Option<usize>,
    /// str0m counted this receiver's loss as congestion at the last allocation: no video FEC
    /// then (parity into an overflowing queue only adds to the loss it is meant to repair).
    pub congested: bool,
    /// Smoothed downlink loss from this peer's receiver reports (0..1): up at once, down
    /// slowly; sets repair (RTX copies, FEC).
    pub loss_ewma: f32,
    /// The same loss smoothed both ways, for what the allocator charges for repair: a layer
    /// choice needs a steady input (with `loss_ewma`, a receiver at a 1 Mbit/s cap switched
    /// 720p ↔ 360p three times in 15 s).
    pub loss_steady: f32,
    /// Downlink loss comes from transport-wide feedback (set once the first figure arrives).
    pub twcc_loss: bool,
    /// Retransmitted copies per NACKed video packet (`repair::rtx_copies_for_loss`).
    pub rtx_copies: usize,
    /// The resend share in force (`repair::RTX_RATIO_CAP` or `RTX_RATIO_CAP_CONGESTED`).
    pub rtx_ratio_cap: f32,
    /// Queued in the worker's `dirty` list (drained once per batch of input, however many
    /// packets were written to it meanwhile).
    pub dirty: bool,
    /// Loss in the last audio receiver report, and when it came.
    pub audio_loss: Option<(f32, Instant)>,
    /// What the receiver asked for per track (tile size, frame rate, hidden). Kept here, not
    /// only in the forwarder, because a client may ask before the track's m-line is live.
    pub constraints: FastMap<TrackId, Constraint>,
    /// Offer RED/ULPFEC for video to this subscriber.
    pub fec: bool,
    /// Video m-lines where RED/ULPFEC were negotiated, with their payload types.
    pub fec_pts: FastMap<Mid, FecPts>,
    /// The payload types our offers propose for them (chosen once per connection).
    pub fec_offer: Option<FecPts>,
    /// Latest round-trip time str0m measured to this peer.
    pub rtt: Option<Duration>,
    /// How long its video streams keep sent packets for NACKs (`repair::rtx_history`).
    pub rtx_history: Duration,
}

/// How often str0m reports per-media statistics (NACK/PLI counters for /metrics).
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Starting estimate for a receiver's downlink, before TWCC feedback says more.
const INITIAL_ESTIMATE_KBPS: u64 = 1_500;

/// What a new peer connection negotiates beyond the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// Send-side bandwidth estimation (TWCC) for the allocator; receivers only.
    pub bwe: bool,
    /// Video FEC (red/ulpfec) towards it; receivers only.
    pub fec: bool,
    /// The Dependency Descriptor header extension (see `dd_extension::negotiate`).
    pub descriptor: bool,
    /// ICE lite (we only answer checks): right for browsers and cameras, which run full ICE.
    /// A cascade link's child end talks to another yunshi, which is lite: it runs full ICE.
    pub ice_lite: bool,
}

/// abs-capture-time's id in our offers (clear of str0m's standard ids and the DD's 12).
pub const ABS_CAPTURE_TIME_ID: u8 = 9;

impl Peer {
    pub fn new(
        id: PeerId,
        room: RoomId,
        kind: PeerKind,
        candidate: SocketAddr,
        features: Features,
        dtls_cert: Option<DtlsCert>,
        now: Instant,
    ) -> Self {
        let Features { bwe, fec, descriptor, ice_lite } = features;
        // Opus with RFC 2198 RED: browsers send redundant audio when it is negotiated.
        let mut config = Rtc::builder()
            .set_ice_lite(ice_lite)
            .set_rtp_mode(true)
            .set_stats_interval(Some(STATS_INTERVAL))
            .enable_opus(true, true);
        if descriptor {
            config = config.set_extension(dd_extension::ID, dd_extension::extension());
        }
        // abs-capture-time travels end to end (the capture instant of each frame, from the
        // publisher): receivers measure glass-to-glass delay through any number of SFU hops.
        config = config.set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime);
        // Opus DTX: publishers stop sending during silence (a packet every 400 ms, not every 20).
        config.codec_config().set_opus_dtx(true);
        if bwe && !kind.publishes() {
            // Receivers get a send-side estimate (TWCC) that the allocator shares among tracks.
            config = config.enable_bwe(Some(Bitrate::kbps(INITIAL_ESTIMATE_KBPS)));
        }
        // The worker's certificate (see `dtls_identity.rs`); without one str0m makes its own.
        if let Some(cert) = dtls_cert {
            config = config.set_dtls_cert(cert);
        }
        let mut rtc = config.build(now);
        // The address is a valid host candidate by construction (we bound it).
        if let Ok(c) = Candidate::host(candidate, "udp") {
            rtc.add_local_candidate(c);
        }
        Self {
            id,
            room,
            kind,
            on_link: false,
            rtc,
            connected: false,
            remote_addrs: Vec::new(),
            own_socket: None,
            scheduled: None,
            next_timeout: now,
            published: FastMap::default(),
            ssrc_tracks: FastMap::default(),
            slots: FastMap::default(),
            pending_offer: None,
            wanted: Vec::new(),
            unwanted: Vec::new(),
            nacks_seen: HashMap::new(),
            estimates: Default::default(),
            bwe_wanted: 0,
            bandwidth_limited: false,
            red_room: None,
            congested: false,
            loss_ewma: 0.0,
            loss_steady: 0.0,
            twcc_loss: false,
            rtx_copies: 1,
            rtx_ratio_cap: crate::repair::RTX_RATIO_CAP,
            dirty: false,
            audio_loss: None,
            constraints: FastMap::default(),
            fec: fec && !kind.publishes(),
            fec_pts: FastMap::default(),
            fec_offer: None,
            rtt: None,
            rtx_history: repair::rtx_history(None),
        }
    }

    /// Keep max(1 s, 3 × RTT) of sent video for resends as the RTT moves (reconfigured only
    /// when the rounded figure changes; the cached packets stay).
    pub fn follow_rtt_in_rtx_history(&mut self) {
        let history = repair::rtx_history(self.rtt);
        if history == self.rtx_history {
            return;
        }
        self.rtx_history = history;
        self.for_each_video_tx(|tx| tx.set_rtx_cache_age(history));
    }

    /// Apply `f` to the send stream of every active video m-line (repair settings).
    pub fn for_each_video_tx(&mut self, mut f: impl FnMut(&mut str0m::rtp::StreamTx)) {
        let mut api = self.rtc.direct_api();
        for (mid, slot) in &self.slots {
            if slot.active && slot.kind == TrackKind::Video {
                for stream in 0..slot.rids.len().max(1) {
                    if let Some(tx) = api.stream_tx_by_mid(*mid, slot.rid(stream as u8)) {
                        f(tx);
                    }
                }
            }
        }
    }

    /// Accept a remote offer (publish, WHIP, WHEP) and return our answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        if let Some(why) = crate::sdp_check::payload_type_clash(sdp) {
            return Err(SfuError::BadSdp(why));
        }
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| SfuError::Rejected(e.to_string()))?;
        let mut answer = answer.to_sdp_string();
        if self.fec {
            // Take over the viewer's RED/ULPFEC payload types for its video m-lines.
            let offered = sdp_fec::negotiated(sdp);
            answer = sdp_fec::add(&answer, &offered);
            self.set_fec_pts(&answer);
        }
        if self.kind == PeerKind::Whep {
            // str0m announces the m-lines (MediaAdded) only once connected; a viewer's slots are
            // known from the answer already, so the room can bind sources right away.
            for (mid, kind) in send_sections(&answer) {
                self.slots.entry(mid).or_insert(Slot::new(kind, None, true));
            }
        }
        Ok(answer)
    }

    /// Apply the client's answer to our outstanding offer. Returns the m-lines it confirmed.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Vec<Mid>, SfuError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let Some((pending, mids)) = self.pending_offer.take() else {
            return Err(SfuError::Rejected("no offer is outstanding".into()));
        };
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| SfuError::Rejected(e.to_string()))?;
        if self.fec {
            self.set_fec_pts(sdp);
        }
        for mid in &mids {
            if let Some(slot) = self.slots.get_mut(mid) {
                slot.negotiated = true;
            }
        }
        Ok(mids)
    }

    /// If no offer is outstanding and something changed, make the next offer. The first offer of
    /// a subscribe connection carries a data channel so it is never empty.
    pub fn make_offer(&mut self, first: bool) -> Option<String> {
        if self.pending_offer.is_some() || (!first && self.wanted.is_empty() && self.unwanted.is_empty()) {
            return None;
        }
        let wanted = std::mem::take(&mut self.wanted);
        let unwanted = std::mem::take(&mut self.unwanted);
        let mut api = self.rtc.sdp_api();
        if first {
            api.add_channel("yunshi".to_string());
        }
        let mut added = Vec::with_capacity(wanted.len());
        for w in &wanted {
            let media_kind = match w.kind {
                TrackKind::Audio => MediaKind::Audio,
                TrackKind::Video => MediaKind::Video,
            };
            let simulcast = (!w.rids.is_empty()).then(|| {
                let mut s = Simulcast::new();
                for rid in &w.rids {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
                s
            });
            let mid = api.add_media(
                media_kind,
                Direction::SendOnly,
                Some(w.stream_id.clone()),
                Some(format!("t{}", w.track)),
                simulcast,
            );
            added.push((mid, w));
        }
        for mid in &unwanted {
            api.set_direction(*mid, Direction::Inactive);
        }
        let (offer, pending) = api.apply()?;
        let mut mids = Vec::with_capacity(added.len());
        for (mid, w) in added {
            let mut slot = Slot::new(w.kind, Some(w.track), false);
            slot.rids = w.rids.clone();
            self.slots.insert(mid, slot);
            mids.push(mid);
        }
        self.pending_offer = Some((pending, mids));
        let mut offer = offer.to_sdp_string();
        if self.fec {
            // Keep the earlier choice while this offer leaves it free (the first offer may have
            // had no video m-line, so its "free" types may be str0m's video codecs).
            let free = sdp_fec::unused_pts(&offer);
            if self.fec_offer.is_none_or(|p| !sdp_fec::pts_free(&offer, p)) {
                self.fec_offer = free;
            }
            if let Some(pts) = self.fec_offer {
                let video = self.slots.iter().filter(|(_, s)| s.kind == TrackKind::Video);
                let wanted: HashMap<String, FecPts> = video.map(|(mid, _)| (mid.to_string(), pts)).collect();
                offer = sdp_fec::add(&offer, &wanted);
            }
        }
        Some(offer)
    }

    /// Record where the final SDP (our answer, or the client's) negotiated video FEC.
    fn set_fec_pts(&mut self, sdp: &str) {
        for (mid, pts) in sdp_fec::negotiated(sdp) {
            tracing::debug!(peer = self.id, %mid, red = pts.red, ulpfec = pts.ulpfec, "video FEC negotiated");
            self.fec_pts.insert(Mid::from(mid.as_str()), pts);
        }
    }

    /// Our payload type (and RED's, if this peer negotiated it) for the codec the source uses.
    pub fn local_pt_for(&self, source: PayloadParams) -> Option<(Pt, Option<Pt>)> {
        let p = self.rtc.codec_config().match_params(source)?;
        Some((p.pt(), p.red()))
    }

    /// Find the slot currently fed by `track`.
    pub fn slot_of(&self, track: TrackId) -> Option<Mid> {
        self.slots.iter().find(|(_, s)| s.track == Some(track)).map(|(m, _)| *m)
    }
}

/// The m-lines of an SDP in which we send: (mid, kind).
fn send_sections(sdp: &str) -> Vec<(Mid, TrackKind)> {
    let mut out = Vec::new();
    let mut kind = None;
    let mut mid = None;
    let mut sending = false;
    let flush = |kind: Option<TrackKind>, mid: Option<Mid>, sending: bool, out: &mut Vec<(Mid, TrackKind)>| {
        if let (Some(k), Some(m), true) = (kind, mid, sending) {
            out.push((m, k));
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            flush(kind, mid, sending, &mut out);
            kind = match rest.split(' ').next() {
                Some("audio") => Some(TrackKind::Audio),
                Some("video") => Some(TrackKind::Video),
                _ => None,
            };
            mid = None;
            sending = false;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(Mid::from(m));
        } else if line == "a=sendonly" || line == "a=sendrecv" {
            sending = true;
        }
    }
    flush(kind, mid, sending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(cert: Option<DtlsCert>) -> Peer {
        let features = Features { bwe: true, fec: false, descriptor: false, ice_lite: true };
        let at = "127.0.0.1:4000".parse().unwrap();
        Peer::new(crate::ids::next_id(), RoomId::from("r"), PeerKind::Subscribe, at, features, cert, Instant::now())
    }

    fn fingerprint(p: &mut Peer) -> String {
        p.rtc.direct_api().local_dtls_fingerprint().to_string()
    }

    #[test]
    fn peers_given_one_certificate_present_one_fingerprint() {
        let mut id = crate::dtls_identity::DtlsIdentity::new(Instant::now());
        let (mut a, mut b) = (peer(id.for_peer(Instant::now())), peer(id.for_peer(Instant::now())));
        assert_eq!(fingerprint(&mut a), fingerprint(&mut b));
        // Without one, each makes its own (str0m's default).
        let (mut c, mut d) = (peer(None), peer(None));
        assert_ne!(fingerprint(&mut c), fingerprint(&mut d));
        assert_ne!(fingerprint(&mut a), fingerprint(&mut c));
    }

    #[test]
    fn finds_send_sections() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a1\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v1\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v2\r\na=sendrecv\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d\r\n";
        let found = send_sections(sdp);
        assert_eq!(found, vec![(Mid::from("a1"), TrackKind::Audio), (Mid::from("v2"), TrackKind::Video)]);
    }
}
