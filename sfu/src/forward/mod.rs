//! The room forwarder: which packet of which track goes to which subscriber, with what sequence
//! number, timestamp and picture id. Sans-IO: no sockets, no str0m, time is an argument, so
//! every decision is unit-tested with a driven clock.
//!
//! Rules it enforces:
//! - each video subscription follows a layer chosen from its constraints (max height, max
//!   temporal layer, paused) and what the publisher sends, through a `Selector` strategy
//!   (simulcast streams, or SVC layers in one stream);
//! - a new subscriber (or one switched to a new source, or resumed) starts on a keyframe, and
//!   keyframes are requested from the publisher for it, merged across subscribers per stream;
//! - a muted track is not forwarded at all;
//! - output sequence numbers, timestamps and VP8 picture ids are continuous per subscriber.

pub mod dependency_descriptor;
mod keyframe_gate;
pub mod layers;
mod relay;
mod rewrite;
pub mod select;
mod vp8_munger;

pub use keyframe_gate::KeyframeGate;
pub use layers::FrameInfo;
pub use relay::{RelayStreams, Relayed};
pub use rewrite::SeqTsRewriter;
pub use select::{Selector, Strategy, Target, Verdict};
pub use vp8_munger::Vp8Munger;

use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::allocate::{Demand, Grant, LayerRates};
use crate::codec::{starts_keyframe, VideoCodec};
use crate::fast_map::FastMap;
use crate::ids::TrackId;
use dependency_descriptor::Structure;

/// At most one keyframe request per publisher stream per this interval.
/// What each forwarded packet adds on the wire beyond its payload: RTP header and extensions
/// (~28 bytes), SRTP tag (10), UDP and IPv4 (28). Layer rates are measured with it because the
/// bandwidth estimate they are compared with counts it too (str0m fork, `session.rs`).
const WIRE_OVERHEAD_BYTES: usize = 66;

pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(150);
/// While a subscriber still waits for a keyframe, ask again this often.
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(1000);
/// A simulcast stream or SVC layer not seen for this long is treated as switched off.
pub const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);
/// A layer silent for this long while a layer below it keeps arriving is switched off sooner:
/// its sender stopped it (a browser short of bandwidth, or a cascade link whose estimate no
/// longer fits it), and its subscribers are waiting on it with nothing to show. With only
/// [`LAYER_TIMEOUT`], a city's viewer froze for about 2 s each time the link from the county
/// tried the next stream and gave it up again. Well above a frame interval, so a late frame
/// or a keyframe's burst on another stream does not count as stopping.
pub const LAYER_STOPPED_BELOW: Duration = Duration::from_millis(500);
/// Simulcast streams / spatial layers we track.
pub const MAX_LAYERS: usize = 4;
/// Window over which layer bitrates are measured.
const RATE_WINDOW: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// One incoming packet, as far as forwarding cares.
#[derive(Clone, Copy, Debug)]
pub struct PacketMeta<'a> {
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    /// Simulcast stream index (0 = lowest; 0 for a single stream).
    pub stream: u8,
    /// The raw Dependency Descriptor header extension, when the publisher sends one.
    pub dd: Option<&'a [u8]>,
}

/// One packet to write to one subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward<S> {
    pub to: S,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    /// Rewritten VP8 (picture id, TL0PICIDX), when the packet carries them.
    pub vp8: Option<(u16, u8)>,
    /// The subscriber's simulcast stream to write it on: 0, except on a relayed subscription
    /// (a cascade link's), which sends every stream on as its own.
    pub stream: u8,
}

/// What the caller must do besides writing the forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Ask the publisher for a keyframe on this stream (simulcast index; 0 otherwise).
    pub request_keyframe: Option<u8>,
    /// The packet's Dependency Descriptor: `Some(true)` read, `Some(false)` unreadable.
    pub descriptor_read: Option<bool>,
}

/// What a subscriber asked for on one track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constraint {
    /// Highest picture height wanted (a 180-px tile never gets 720p). `u16::MAX`: no limit.
    pub max_height: u16,
    pub max_temporal: u8,
    /// Hidden tile: nothing is forwarded.
    pub paused: bool,
}

impl Default for Constraint {
    fn default() -> Self {
        Self { max_height: u16::MAX, max_temporal: u8::MAX, paused: false }
    }
}

#[derive(Debug)]
struct Subscription<S> {
    to: S,
    rewriter: SeqTsRewriter,
    munger: Vp8Munger,
    selector: Strategy,
    constraint: Constraint,
    /// What bandwidth allocation allows (None until the subscriber has an estimate).
    grant: Option<Grant>,
    /// A cascade link's subscription to a simulcast track takes every stream (boxed: only
    /// links have one).
    relay: Option<Box<RelayStreams>>,
    /// A cascade link's: every frame of the layers up to its target. SVC cuts lower layers'
    /// delta frames for a viewer of an upper one (KEY modes), but the far end's own viewers
    /// may watch the lower layers.
    whole: bool,
}

impl<S> Subscription<S> {
    fn paused(&self) -> bool {
        self.constraint.paused || self.grant == Some(Grant::Paused)
    }

    fn restart(&mut self) {
        self.selector.reset();
        self.rewriter.rebase();
        self.munger.rebase();
        if let Some(r) = &mut self.relay {
            r.restart();
        }
    }
}

/// What the track knows about one simulcast stream or spatial layer.
#[derive(Debug, Clone, Copy, Default)]
struct LayerState {
    last_seen: Option<Instant>,
    /// (width, height) from the last keyframe.
    size: Option<(u16, u16)>,
    window_bytes: u64,
    /// Smoothed bitrate of this layer alone, bits/s.
    rate_bps: u64,
}

#[derive(Debug)]
struct Track<S> {
    kind: TrackKind,
    codec: Option<VideoCodec>,
    clock_rate: u32,
    muted: bool,
    subs: Vec<Subscription<S>>,
    layers: [LayerState; MAX_LAYERS],
    gates: [KeyframeGate; MAX_LAYERS],
    /// Last keyframe request per stream on behalf of waiting subscribers.
    asked: [Option<Instant>; MAX_LAYERS],
    /// A keyframe arrived on the stream since the last request: whoever still waits came too
    /// late for it and is asked for again as soon as the gate allows, not after a retry.
    answered: [bool; MAX_LAYERS],
    /// Simulcast streams announced in the SDP; until they have had time to show up, an unseen
    /// one still counts, so subscribers do not start low and climb through every stream.
    expected_layers: u8,
    first_packet: Option<Instant>,
    window_start: Option<Instant>,
    /// The Dependency Descriptor structure of the last keyframe (per simulcast stream).
    dd: [Option<Structure>; MAX_LAYERS],
    /// Descriptors we could not read (before the first structure, or corrupt).
    dd_errors: u64,
    /// VP9 SVC in a KEY mode: upper layers' delta frames do not predict from the layer below
    /// (learnt from their D bits; one that does makes it `Some(false)` for good).
    vp9_key_mode: Option<bool>,
}

impl<S> Track<S> {
    /// Spatial layers in one stream: VP9, and AV1 when it is not simulcast (its layers are
    /// told apart by the Dependency Descriptor).
    fn svc(&self) -> bool {
        match self.codec {
            Some(VideoCodec::Vp9) => true,
            Some(VideoCodec::Av1) => self.expected_layers <= 1,
            _ => false,
        }
    }

    /// Which layers need a VP9 frame, once the stream shows it is in a KEY mode: a key
    /// picture's frames serve their layer and those above, a delta frame only its own layer.
    fn vp9_needed_by(&mut self, payload: &[u8], info: &mut FrameInfo) {
        let Some((inter_picture, inter_layer)) = layers::vp9_prediction(payload) else { return };
        if info.frame_start && info.spatial > 0 && inter_picture {
            self.vp9_key_mode = match (self.vp9_key_mode, inter_layer) {
                (_, true) => Some(false),
                (None, false) => Some(true),
                (known, false) => known,
            };
        }
        if self.vp9_key_mode == Some(true) {
            let all_from_here = (0x0f << info.spatial) & 0x0f;
            info.needed_by = Some(if inter_picture { 1 << info.spatial } else { all_from_here });
        }
    }

    /// Layer facts from the Dependency Descriptor, over what the payload said: AV1 and H.264
    /// carry no layer ids in their payload, and Chromium leaves VP8's TID out when it sends
    /// one. VP9's own descriptor stays authoritative.
    fn apply_dd(&mut self, raw: &[u8], stream: u8, info: &mut FrameInfo, now: Instant) -> Option<bool> {
        if self.codec == Some(VideoCodec::Vp9) {
            return None;
        }
        let svc = self.svc();
        let slot = &mut self.dd[(stream as usize).min(MAX_LAYERS - 1)];
        let frame = match dependency_descriptor::parse(raw, slot.as_ref()) {
            Ok((frame, new)) => {
                if let Some(new) = new {
                    *slot = Some(new);
                }
                frame
            }
            Err(_) => {
                self.dd_errors += 1;
                return Some(false);
            }
        };
        let Some(structure) = slot.as_ref() else { return Some(false) };
        info.temporal = frame.temporal;
        info.switch_mask = Some(frame.switch_mask(structure));
        info.frame_start = frame.start;
        info.frame_end = frame.end;
        if svc {
            info.spatial = frame.spatial;
            info.needed_by = Some(frame.needed_by(structure));
        }
        // A new structure comes with a keyframe (the only frame type that may carry one).
        if frame.new_structure && frame.start && frame.spatial == 0 {
            info.keyframe = true;
            for spatial in 0..=structure.max_spatial() {
                // The structure lists the spatial layers about to follow in this keyframe:
                // a subscriber starting on its base layer aims for them at once.
                if svc {
                    if let Some(l) = self.layers.get_mut(spatial as usize) {
                        l.last_seen = Some(now);
                    }
                }
                let layer = if svc { spatial as usize } else { stream as usize };
                if let (Some(size), Some(l)) = (structure.resolution(spatial), self.layers.get_mut(layer)) {
                    if svc || spatial == 0 {
                        l.size = Some(size);
                    }
                }
            }
        }
        if info.keyframe {
            info.switch_mask = Some(u8::MAX);
        }
        Some(true)
    }

    fn new_selector(&self) -> Strategy {
        if self.svc() {
            Strategy::Svc(Default::default())
        } else {
            Strategy::Simulcast(Default::default())
        }
    }

    /// The layer a subscription should aim for: its constraint, capped by its grant.
    fn want_for(&self, s: &Subscription<S>, now: Instant) -> Target {
        let mut t = self.want(&s.constraint, now);
        if let Some(Grant::Layer(cap)) = s.grant {
            t.spatial = t.spatial.min(cap);
        }
        t
    }

    /// Bitrate of each layer as a receiver pays for it: a simulcast stream alone, an SVC layer
    /// with the layers below it.
    fn rates(&self) -> LayerRates {
        self.layer_costs(self.svc())
    }

    /// Bitrate of each layer, alone or (`with_lower`) with every layer below it; 0 for a layer
    /// not being sent, which cannot be granted.
    fn layer_costs(&self, with_lower: bool) -> LayerRates {
        let mut r = [0u64; MAX_LAYERS];
        let mut below = 0;
        for (i, l) in self.layers.iter().enumerate() {
            if l.rate_bps == 0 {
                continue;
            }
            r[i] = l.rate_bps + if with_lower { below } else { 0 };
            below = r[i];
        }
        r
    }

    fn measure(&mut self, layer: usize, bytes: usize, now: Instant) {
        self.layers[layer].window_bytes += bytes as u64;
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < RATE_WINDOW {
            return;
        }
        for l in &mut self.layers {
            let bps = l.window_bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
            // Smooth over ~4 windows (2 s): a keyframe doubles a layer's rate for one window,
            // and the allocator must not take that for the layer's cost. A layer that stopped
            // decays towards zero.
            l.rate_bps = if l.rate_bps == 0 { bps } else { (3 * l.rate_bps + bps) / 4 };
            l.window_bytes = 0;
        }
        self.window_start = Some(now);
    }

    /// The layer a subscription should aim for now.
    fn want(&self, c: &Constraint, now: Instant) -> Target {
        let mut chosen = None;
        let warming_up = self.first_packet.is_none_or(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT);
        // The newest packet of any layer below the one looked at.
        let mut newest_below: Option<Instant> = None;
        for (i, l) in self.layers.iter().enumerate() {
            let stopped = match (l.last_seen, newest_below) {
                (Some(last), Some(below)) => below.saturating_duration_since(last) >= LAYER_STOPPED_BELOW,
                _ => false,
            };
            newest_below = newest_below.max(l.last_seen);
            let seen = !stopped && l.last_seen.is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT);
            let announced = warming_up && l.last_seen.is_none() && i < self.expected_layers as usize;
            if !seen && !announced {
                continue;
            }
            let fits = match l.size {
                Some((_, h)) => h <= c.max_height,
                None => c.max_height == u16::MAX,
            };
            if chosen.is_none() || fits {
                chosen = Some(i as u8);
            }
        }
        Target { spatial: chosen.unwrap_or(0), temporal: c.max_temporal }
    }
}

/// The forwarding state of all tracks on one worker. `S` names a subscriber's slot.
pub struct Forwarder<S> {
    tracks: FastMap<TrackId, Track<S>>,
    /// Numbering of slots detached from their track, kept so a later subscription of the same
    /// slot continues it (WHEP source switch).
    detached: FastMap<S, (SeqTsRewriter, Vp8Munger)>,
    /// Subscribers' keyframe requests reach a publisher at most this often.
    keyframe_interval: Duration,
}

impl<S: Copy + Eq + Hash> Default for Forwarder<S> {
    fn default() -> Self {
        Self::with_keyframe_interval(KEYFRAME_REQUEST_INTERVAL)
    }
}

impl<S: Copy + Eq + Hash> Forwarder<S> {
    pub fn with_keyframe_interval(keyframe_interval: Duration) -> Self {
        Self { tracks: FastMap::default(), detached: FastMap::default(), keyframe_interval }
    }

    pub fn add_track(&mut self, track: TrackId, kind: TrackKind, clock_rate: u32) {
        self.tracks.entry(track).or_insert_with(|| Track {
            kind,
            codec: None,
            clock_rate,
            muted: false,
            subs: Vec::new(),
            layers: Default::default(),
            gates: std::array::from_fn(|_| KeyframeGate::new(self.keyframe_interval)),
            asked: [None; MAX_LAYERS],
            answered: [false; MAX_LAYERS],
            expected_layers: 1,
            first_packet: None,
            window_start: None,
            dd: Default::default(),
            dd_errors: 0,
            vp9_key_mode: None,
        });
    }

    /// How many simulcast streams the publisher announced (1 when not simulcast).
    pub fn set_layer_count(&mut self, track: TrackId, n: u8) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.expected_layers = n.clamp(1, MAX_LAYERS as u8);
        }
    }

    /// The codec is learnt from the first packet's payload type.
    pub fn set_codec(&mut self, track: TrackId, codec: Option<VideoCodec>, clock_rate: u32) {
        let Some(t) = self.tracks.get_mut(&track) else { return };
        t.codec = codec;
        t.clock_rate = clock_rate;
        let fresh = t.new_selector();
        for s in &mut t.subs {
            s.rewriter.set_clock_rate(clock_rate);
            s.selector = fresh.clone();
        }
    }

    pub fn has_track(&self, track: TrackId) -> bool {
        self.tracks.contains_key(&track)
    }

    /// Remove a track; its subscribers keep their numbering for whatever they get next.
    pub fn remove_track(&mut self, track: TrackId) -> Vec<S> {
        let Some(t) = self.tracks.remove(&track) else { return Vec::new() };
        t.subs
            .into_iter()
            .map(|s| {
                self.detached.insert(s.to, (s.rewriter, s.munger));
                s.to
            })
            .collect()
    }

    /// Subscribe `to` to `track`. Video asks for a keyframe at once (merged by the gate).
    pub fn subscribe(&mut self, track: TrackId, to: S, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else { return Outcome::default() };
        if t.subs.iter().any(|s| s.to == to) {
            return Outcome::default();
        }
        let (mut rewriter, mut munger) =
            self.detached.remove(&to).unwrap_or_else(|| (SeqTsRewriter::new(t.clock_rate), Vp8Munger::default()));
        rewriter.set_clock_rate(t.clock_rate);
        rewriter.rebase();
        munger.rebase();
        let constraint = Constraint::default();
        let want = t.want(&constraint, now);
        t.subs.push(Subscription {
            to,
            rewriter,
            munger,
            selector: t.new_selector(),
            constraint,
            grant: None,
            relay: None,
            whole: false,
        });
        if t.kind != TrackKind::Video {
            return Outcome::default();
        }
        Self::ask(t, want.spatial, now)
    }

    /// Subscribe a cascade link to every stream of a simulcast track, each forwarded on as the
    /// subscriber's stream of the same index (`Forward::stream`). Any other track is subscribed
    /// as usual, but whole: no constraint caps an SVC stream's layers, and every frame of
    /// them goes on (`Subscription::whole`).
    pub fn subscribe_all_streams(&mut self, track: TrackId, to: S, now: Instant) -> Outcome {
        let outcome = self.subscribe(track, to, now);
        let Some(t) = self.tracks.get_mut(&track) else { return outcome };
        if let Some(s) = t.subs.iter_mut().find(|s| s.to == to) {
            s.whole = true;
        }
        if !Self::relays(t) {
            return outcome;
        }
        let clock_rate = t.clock_rate;
        if let Some(s) = t.subs.iter_mut().find(|s| s.to == to) {
            s.relay.get_or_insert_with(|| Box::new(RelayStreams::new(clock_rate)));
        }
        outcome
    }

    /// The far end of a relayed subscription needs streams up to `top` only (its dynacast).
    pub fn set_relay_top(&mut self, track: TrackId, to: S, top: u8) {
        let Some(t) = self.tracks.get_mut(&track) else { return };
        if let Some(r) = t.subs.iter_mut().find(|s| s.to == to).and_then(|s| s.relay.as_mut()) {
            r.set_top(top);
        }
    }

    fn relays(t: &Track<S>) -> bool {
        t.kind == TrackKind::Video && !t.svc() && t.expected_layers > 1
    }

    /// The simulcast streams a relayed subscription to `track` sends on (1 otherwise).
    pub fn relayed_streams(&self, track: TrackId) -> u8 {
        self.tracks.get(&track).filter(|t| Self::relays(t)).map_or(1, |t| t.expected_layers)
    }

    /// Ask the publisher for a keyframe on `stream`, merged by the stream's gate.
    fn ask(t: &mut Track<S>, stream: u8, now: Instant) -> Outcome {
        let i = (stream as usize).min(MAX_LAYERS - 1);
        if t.gates[i].allow(now) {
            t.asked[i] = Some(now);
            t.answered[i] = false;
            Outcome { request_keyframe: Some(stream), ..Default::default() }
        } else {
            Outcome::default()
        }
    }

    /// Stop forwarding `track` to `to`, keeping the numbering for the slot's next source.
    pub fn unsubscribe(&mut self, track: TrackId, to: S) {
        if let Some(t) = self.tracks.get_mut(&track) {
            if let Some(i) = t.subs.iter().position(|s| s.to == to) {
                let s = t.subs.swap_remove(i);
                self.detached.insert(s.to, (s.rewriter, s.munger));
            }
        }
    }

    /// Remove every slot matching `pred` (all slots of a peer that left).
    pub fn forget_where(&mut self, pred: impl Fn(&S) -> bool) {
        for t in self.tracks.values_mut() {
            t.subs.retain(|s| !pred(&s.to));
        }
        self.detached.retain(|k, _| !pred(k));
    }

    /// A subscriber's wishes for one track. Resuming from pause restarts on a keyframe.
    pub fn set_constraint(&mut self, track: TrackId, to: S, c: Constraint, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else { return Outcome::default() };
        let Some(i) = t.subs.iter().position(|s| s.to == to) else { return Outcome::default() };
        let was_paused = t.subs[i].paused();
        t.subs[i].constraint = c;
        Self::after_change(t, i, was_paused, now)
    }

    /// After a subscription's constraint or grant changed: restart it if it resumes, and ask
    /// for the keyframe its new layer needs.
    fn after_change(t: &mut Track<S>, i: usize, was_paused: bool, now: Instant) -> Outcome {
        let want = t.want_for(&t.subs[i], now);
        let s = &mut t.subs[i];
        if was_paused && !s.paused() {
            s.restart();
        }
        // A relayed subscription asks for each stream's keyframe when that stream's next
        // packet finds it waiting (`on_packet`); it has no selector of its own.
        if t.kind != TrackKind::Video || s.paused() || s.relay.is_some() {
            return Outcome::default();
        }
        match s.selector.needs_keyframe(want) {
            Some(stream) => Self::ask(t, stream, now),
            None => Outcome::default(),
        }
    }

    /// Keep `n` sequence numbers free in `to`'s view of `track` after the last packet it was
    /// given, for packets the sender adds (FEC); returns the first. `None` before any output.
    pub fn reserve_seq(&mut self, track: TrackId, to: S, stream: u8, n: u64) -> Option<u64> {
        let s = self.tracks.get_mut(&track)?.subs.iter_mut().find(|s| s.to == to)?;
        match &mut s.relay {
            Some(r) => r.reserve(stream, n),
            None => s.rewriter.reserve(n),
        }
    }

    /// The layer a subscription currently receives (for tests and stats).
    pub fn current_layer(&self, track: TrackId, to: S) -> Option<Target> {
        self.tracks.get(&track)?.subs.iter().find(|s| s.to == to)?.selector.current()
    }

    /// Mute stops forwarding; unmute restarts every subscriber on a keyframe.
    pub fn set_muted(&mut self, track: TrackId, muted: bool, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else { return Outcome::default() };
        if t.muted == muted {
            return Outcome::default();
        }
        t.muted = muted;
        if muted {
            return Outcome::default();
        }
        for s in &mut t.subs {
            s.restart();
        }
        if t.kind != TrackKind::Video || t.subs.is_empty() {
            return Outcome::default();
        }
        let want = t.want(&Constraint::default(), now);
        Self::ask(t, want.spatial, now)
    }

    /// A subscriber lost a picture: forward its PLI/FIR for the stream it follows (a relayed
    /// subscription: for the stream it names, `stream`).
    pub fn on_keyframe_request(&mut self, track: TrackId, to: S, stream: u8, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else { return Outcome::default() };
        if t.kind != TrackKind::Video {
            return Outcome::default();
        }
        let sub = t.subs.iter().find(|s| s.to == to);
        if sub.is_some_and(|s| s.relay.is_some()) {
            return Self::ask(t, stream, now);
        }
        let stream = sub.and_then(|s| s.selector.current()).map_or(0, |c| c.spatial);
        let stream = if t.svc() { 0 } else { stream };
        Self::ask(t, stream, now)
    }

    /// Decide the fate of one incoming packet. `out` is cleared and filled; it is reused by the
    /// caller so the hot path does not allocate.
    pub fn on_packet(
        &mut self,
        track: TrackId,
        meta: PacketMeta,
        payload: &[u8],
        now: Instant,
        out: &mut Vec<Forward<S>>,
    ) -> Outcome {
        out.clear();
        let Some(t) = self.tracks.get_mut(&track) else { return Outcome::default() };
        if t.kind == TrackKind::Audio {
            if !t.muted {
                for s in &mut t.subs {
                    if s.constraint.paused {
                        continue;
                    }
                    if let Some((seq, ts)) = s.rewriter.rewrite(meta.seq, meta.ts, now) {
                        out.push(Forward { to: s.to, seq, ts, marker: meta.marker, vp8: None, stream: 0 });
                    }
                }
            }
            return Outcome::default();
        }

        let mut info = match t.codec {
            Some(VideoCodec::Vp8) => layers::parse_vp8(payload),
            Some(VideoCodec::Vp9) => layers::parse_vp9(payload),
            Some(c) => Some(FrameInfo::plain(starts_keyframe(c, payload))),
            None => None,
        }
        .unwrap_or_default();
        let descriptor_read = meta.dd.and_then(|raw| t.apply_dd(raw, meta.stream, &mut info, now));
        if t.codec == Some(VideoCodec::Vp9) {
            t.vp9_needed_by(payload, &mut info);
        }
        if !t.svc() {
            info.spatial = meta.stream;
        }
        let layer = (info.spatial as usize).min(MAX_LAYERS - 1);
        t.layers[layer].last_seen = Some(now);
        t.first_packet.get_or_insert(now);
        t.measure(layer, payload.len() + WIRE_OVERHEAD_BYTES, now);
        if info.keyframe {
            t.answered[layer] = true;
            t.answered[(meta.stream as usize).min(MAX_LAYERS - 1)] = true;
            if let Some(size) = keyframe_size(t.codec, payload) {
                t.layers[layer].size = Some(size);
            }
            // VP9 SVC: the keyframe's scalability structure sizes every spatial layer.
            if t.codec == Some(VideoCodec::Vp9) {
                for (l, size) in layers::vp9_layer_sizes(payload).into_iter().flatten().enumerate().take(MAX_LAYERS) {
                    t.layers[l].size = Some(size);
                    // Announced: a subscriber starting on this keyframe aims for it at once.
                    t.layers[l].last_seen = Some(now);
                }
            }
        }
        let quiet = Outcome { descriptor_read, ..Default::default() };
        if t.muted || t.subs.is_empty() {
            return quiet;
        }

        let mut waiting_for: Option<u8> = None;
        // A relayed subscription waits on this packet's stream (asked for on its own: merged
        // with the others' wish it could wait behind another stream's request for good).
        let mut relay_waiting = false;
        for i in 0..t.subs.len() {
            let want = t.want_for(&t.subs[i], now);
            let s = &mut t.subs[i];
            if s.paused() {
                continue;
            }
            if let Some(relay) = &mut s.relay {
                match relay.on_packet(meta.stream, meta.seq, meta.ts, info.keyframe, now) {
                    Relayed::Forward(seq, ts) => {
                        out.push(Forward { to: s.to, seq, ts, marker: meta.marker, vp8: None, stream: meta.stream })
                    }
                    Relayed::Waiting => relay_waiting = true,
                    Relayed::NotNeeded => {}
                }
                continue;
            }
            let verdict = if s.whole && info.needed_by.is_some() {
                s.selector.select(&FrameInfo { needed_by: None, ..info }, want)
            } else {
                s.selector.select(&info, want)
            };
            match verdict {
                Verdict::Forward { switched, marker } => {
                    if switched {
                        s.rewriter.rebase();
                        s.munger.rebase();
                    }
                    if let Some((seq, ts)) = s.rewriter.rewrite(meta.seq, meta.ts, now) {
                        let vp8 = if t.codec == Some(VideoCodec::Vp8) { s.munger.map(&info) } else { None };
                        out.push(Forward { to: s.to, seq, ts, marker: marker.unwrap_or(meta.marker), vp8, stream: 0 });
                    }
                }
                Verdict::Drop => {
                    s.rewriter.skip(meta.seq);
                    s.munger.drop_frame(&info);
                }
                Verdict::Ignore => {}
            }
            if let Some(stream) = s.selector.needs_keyframe(want) {
                waiting_for = Some(waiting_for.map_or(stream, |w| w.max(stream)));
            }
        }
        let due = |t: &Track<S>, stream: u8| {
            let i = (stream as usize).min(MAX_LAYERS - 1);
            t.answered[i] || t.asked[i].is_none_or(|r| now.saturating_duration_since(r) >= KEYFRAME_RETRY)
        };
        let relayed = Some(meta.stream).filter(|s| relay_waiting && due(t, *s));
        match relayed.or(waiting_for.filter(|s| due(t, *s))) {
            Some(stream) => Outcome { descriptor_read, ..Self::ask(t, stream, now) },
            None => quiet,
        }
    }

    /// What a video subscription would like, for the bandwidth allocator. `None` for audio or
    /// unknown slots.
    pub fn demand(&self, track: TrackId, to: S, priority: u32, now: Instant) -> Option<Demand> {
        let t = self.tracks.get(&track)?;
        if t.kind != TrackKind::Video {
            return None;
        }
        let s = t.subs.iter().find(|s| s.to == to)?;
        if s.constraint.paused {
            return None;
        }
        let current = match s.grant {
            Some(Grant::Layer(l)) => Some(l),
            _ => None,
        };
        if let Some(r) = &s.relay {
            // A link carries every stream up to the one granted: each costs it what the
            // streams below it cost as well, as an SVC layer does.
            let max_layer = r.top().min(t.expected_layers.saturating_sub(1));
            return Some(Demand { priority, max_layer, rates: t.layer_costs(true), current });
        }
        let max_layer = t.want(&s.constraint, now).spatial;
        Some(Demand { priority, max_layer, rates: t.rates(), current })
    }

    /// Apply the allocator's decision to one subscription.
    pub fn set_grant(&mut self, track: TrackId, to: S, grant: Grant, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else { return Outcome::default() };
        let Some(i) = t.subs.iter().position(|s| s.to == to) else { return Outcome::default() };
        if t.subs[i].grant == Some(grant) {
            return Outcome::default();
        }
        let was_paused = t.subs[i].paused();
        t.subs[i].grant = Some(grant);
        if let (Some(r), Grant::Layer(cap)) = (&mut t.subs[i].relay, grant) {
            r.set_cap(cap);
        }
        Self::after_change(t, i, was_paused, now)
    }

    /// The highest simulcast layer any subscriber of `track` wants, from the sizes seen on the
    /// layers' keyframes (remembered while a layer is switched off), the subscribers'
    /// constraints and grants: 0 when nobody watches. `None` for audio, SVC and single-stream
    /// video, where there is nothing to switch off.
    pub fn needed_layer(&self, track: TrackId) -> Option<u8> {
        let t = self.tracks.get(&track)?;
        if t.kind != TrackKind::Video || t.svc() || t.expected_layers < 2 {
            return None;
        }
        let top = t.expected_layers - 1;
        let mut needed = 0;
        // What subscribers' tiles want, not what their bandwidth grants allow: a subscriber
        // squeezed for a while comes back up only to layers that are still being sent (and
        // measured; the allocator cannot raise anyone to a layer it knows no cost of).
        for s in t.subs.iter().filter(|s| !s.constraint.paused) {
            let want = if let Some(r) = &s.relay {
                // A link: what its far end's own dynacast says anyone there receives.
                r.top().min(top)
            } else if s.constraint.max_height == u16::MAX {
                top
            } else {
                // A layer whose size no keyframe has shown yet counts as wanted: switched off
                // before it showed one, it would never be known, nor come back.
                (0..=top)
                    .filter(|&i| t.layers[i as usize].size.is_none_or(|(_, h)| h <= s.constraint.max_height))
                    .max()
                    .unwrap_or(0)
            };
            needed = needed.max(want);
        }
        Some(needed)
    }

    /// Measured bitrate per layer of a track (bits/s).
    pub fn layer_rates(&self, track: TrackId) -> Option<LayerRates> {
        self.tracks.get(&track).map(|t| t.rates())
    }

    /// Whether receivers get the publisher's Dependency Descriptor with the packets: for AV1
    /// SVC only, where a receiver needs it to tell the spatial layers of a temporal unit apart.
    /// (Simulcast streams each number their frames on their own; a switch between them would
    /// look like a jump back.)
    pub fn forwards_descriptor(&self, track: TrackId) -> bool {
        self.tracks.get(&track).is_some_and(|t| t.codec == Some(VideoCodec::Av1) && t.svc())
    }

    pub fn subscriber_count(&self, track: TrackId) -> usize {
        self.tracks.get(&track).map_or(0, |t| t.subs.len())
    }
}

/// Picture size carried by a keyframe: VP8's frame header (RFC 6386 §9.1), H.264's SPS (sent
/// with each IDR). (VP9 and AV1 size all their spatial layers at once, from the scalability
/// structure or the descriptor.)
fn keyframe_size(codec: Option<VideoCodec>, payload: &[u8]) -> Option<(u16, u16)> {
    match codec? {
        VideoCodec::H264 => crate::h264::inspect(payload).resolution,
        VideoCodec::Vp8 => {
            let mut i = 1;
            let b0 = *payload.first()?;
            if b0 & 0x80 != 0 {
                let x = *payload.get(1)?;
                i = 2;
                if x & 0x80 != 0 {
                    i += if payload.get(i)? & 0x80 != 0 { 2 } else { 1 };
                }
                if x & 0x40 != 0 {
                    i += 1;
                }
                if x & 0x30 != 0 {
                    i += 1;
                }
            }
            let h = payload.get(i..i + 10)?;
            if h[3..6] != [0x9d, 0x01, 0x2a] {
                return None;
            }
            let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
            let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
            Some((w, ht))
        }
        _ => None,
    }
}

#[cfg(test)]
mod dd_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[0x10, 0x00]; // VP8, S=1, PID=0, P=0
    const DELTA: &[u8] = &[0x10, 0x01];

    fn meta(seq: u64, ts: u32) -> PacketMeta<'static> {
        PacketMeta { seq, ts, marker: true, stream: 0, dd: None }
    }

    fn video_forwarder() -> Forwarder<u32> {
        let mut f = Forwarder::default();
        f.add_track(1, TrackKind::Video, 90_000);
        f.set_codec(1, Some(VideoCodec::Vp8), 90_000);
        f
    }

    fn simulcast_forwarder() -> Forwarder<u32> {
        let mut f = video_forwarder();
        f.set_layer_count(1, 3);
        f
    }

    fn seqs(out: &[Forward<u32>]) -> Vec<(u32, u64)> {
        out.iter().map(|f| (f.to, f.seq)).collect()
    }

    #[test]
    fn new_subscriber_waits_for_keyframe_and_requests_one() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let mut out = Vec::new();
        assert_eq!(f.subscribe(1, 7, t0).request_keyframe, Some(0));
        let o = f.on_packet(1, meta(10, 0), DELTA, t0, &mut out);
        assert!(out.is_empty());
        // A second request so soon is merged away.
        assert_eq!(o.request_keyframe, None);
        f.on_packet(1, meta(11, 3000), KEY, t0 + Duration::from_millis(33), &mut out);
        assert_eq!(out, vec![Forward { to: 7, seq: 11, ts: 3000, marker: true, vp8: None, stream: 0 }]);
        f.on_packet(1, meta(12, 3000), DELTA, t0 + Duration::from_millis(34), &mut out);
        assert_eq!(seqs(&out), vec![(7, 12)]);
    }

    #[test]
    fn waiting_subscriber_asks_again_after_retry_interval() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 7, t0);
        let mut requests = 0;
        for i in 0..90u64 {
            let now = t0 + Duration::from_millis(33 * i);
            if f.on_packet(1, meta(i, 0), DELTA, now, &mut out).request_keyframe.is_some() {
                requests += 1;
            }
        }
        // ~3 s of waiting, one retry per second.
        assert_eq!(requests, 2);
    }

    #[test]
    fn subscriber_too_late_for_the_requested_keyframe_is_asked_for_at_the_next_gate() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut f = video_forwarder();
        let mut out = Vec::new();
        assert!(f.subscribe(1, 7, t0).request_keyframe.is_some());
        // The keyframe that request brought arrives, then a second viewer joins (gate closed).
        f.on_packet(1, meta(0, 0), KEY, ms(40), &mut out);
        assert!(f.subscribe(1, 8, ms(100)).request_keyframe.is_none());
        let mut asked_at = None;
        for i in 1..30u64 {
            let now = ms(40 + 33 * i);
            if f.on_packet(1, meta(i, 0), DELTA, now, &mut out).request_keyframe.is_some() {
                asked_at.get_or_insert(now);
            }
        }
        // At the first packet once the gate reopens (150 ms after the first request: the packet
        // at 172 ms), not after the 1-s retry.
        let gate = KEYFRAME_REQUEST_INTERVAL.as_millis() as u64;
        assert_eq!(asked_at, Some(ms(40 + 33 * (gate - 40).div_ceil(33))));
    }

    #[test]
    fn many_subscribers_merge_keyframe_requests() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let asked: usize = (0..50u32)
            .map(|s| f.subscribe(1, s, t0 + Duration::from_millis(s as u64)).request_keyframe.is_some() as usize)
            .sum();
        assert_eq!(asked, 1);
        let later: usize = (0..10u64)
            .map(|i| {
                f.on_keyframe_request(1, 3, 0, t0 + Duration::from_millis(100 * i)).request_keyframe.is_some() as usize
            })
            .sum();
        // At 0..900 ms, one every 150 ms at most: allowed at 200, 400, 600, 800 (0 was taken
        // by the subscribe).
        assert_eq!(later, 4);
    }

    #[test]
    fn the_keyframe_request_interval_is_configurable() {
        let t0 = Instant::now();
        let mut f: Forwarder<u32> = Forwarder::with_keyframe_interval(Duration::from_millis(400));
        f.add_track(1, TrackKind::Video, 90_000);
        f.set_codec(1, Some(VideoCodec::Vp8), 90_000);
        assert!(f.subscribe(1, 1, t0).request_keyframe.is_some());
        let later: usize = (1..10u64)
            .map(|i| {
                f.on_keyframe_request(1, 3, 0, t0 + Duration::from_millis(50 * i)).request_keyframe.is_some() as usize
            })
            .sum();
        // At 50..450 ms, one every 400 ms at most: allowed at 400 only.
        assert_eq!(later, 1);
    }

    #[test]
    fn audio_forwards_at_once_to_all_and_mute_stops_it() {
        let t0 = Instant::now();
        let mut f: Forwarder<u32> = Forwarder::default();
        f.add_track(2, TrackKind::Audio, 48_000);
        assert_eq!(f.subscribe(2, 1, t0).request_keyframe, None);
        f.subscribe(2, 2, t0);
        let mut out = Vec::new();
        f.on_packet(2, meta(100, 960), &[1, 2, 3], t0, &mut out);
        assert_eq!(out.len(), 2);
        f.set_muted(2, true, t0);
        f.on_packet(2, meta(101, 1920), &[1], t0, &mut out);
        assert!(out.is_empty());
        f.set_muted(2, false, t0 + Duration::from_secs(2));
        f.on_packet(2, meta(200, 96_000), &[1], t0 + Duration::from_secs(2), &mut out);
        // Rebased after the pause: the gap of 98 packets is not exposed, the clock advanced 2 s.
        assert_eq!(out[0].seq, 101);
        assert_eq!(out[0].ts, 960 + 96_000);
    }

    #[test]
    fn unmute_restarts_video_on_keyframe() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 7, t0);
        f.on_packet(1, meta(1, 0), KEY, t0, &mut out);
        f.set_muted(1, true, t0);
        let o = f.set_muted(1, false, t0 + Duration::from_secs(1));
        assert_eq!(o.request_keyframe, Some(0));
        f.on_packet(1, meta(40, 90_000), DELTA, t0 + Duration::from_secs(1), &mut out);
        assert!(out.is_empty());
        f.on_packet(1, meta(41, 93_000), KEY, t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out[0].seq, 2);
    }

    #[test]
    fn source_switch_keeps_numbering() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        f.add_track(3, TrackKind::Video, 90_000);
        f.set_codec(3, Some(VideoCodec::Vp8), 90_000);
        let mut out = Vec::new();
        f.subscribe(1, 9, t0);
        f.on_packet(1, meta(500, 1000), KEY, t0, &mut out);
        f.on_packet(1, meta(501, 1000), DELTA, t0, &mut out);
        let last = out[0];
        f.unsubscribe(1, 9);
        f.subscribe(3, 9, t0 + Duration::from_millis(100));
        f.on_packet(3, meta(9000, 5), KEY, t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out[0].seq, last.seq + 1);
        assert_eq!(out[0].ts, last.ts + 9000);
        // Removing a track detaches its subscribers for their next source.
        assert_eq!(f.remove_track(3), vec![9]);
        assert_eq!(f.subscriber_count(3), 0);
    }

    #[test]
    fn unknown_track_and_empty_payload_are_harmless() {
        let mut f = video_forwarder();
        let mut out = vec![Forward { to: 1, seq: 1, ts: 1, marker: false, vp8: None, stream: 0 }];
        let o = f.on_packet(42, meta(1, 1), &[], Instant::now(), &mut out);
        assert!(out.is_empty());
        assert_eq!(o.request_keyframe, None);
        f.subscribe(1, 1, Instant::now());
        f.on_packet(1, meta(1, 1), &[], Instant::now(), &mut out);
        assert!(out.is_empty());
    }

    /// A VP8 payload of simulcast stream `stream`: descriptor with 15-bit picture id, TL0PICIDX
    /// and TID; keyframes carry the frame header with the picture size.
    fn vp8(pid: u16, tl0: u8, tid: u8, key: bool, height: u16) -> Vec<u8> {
        let mut p = vec![0x90, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, (tid << 6) | 0x20];
        if key {
            let w = height * 16 / 9;
            p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
            p.extend_from_slice(&w.to_le_bytes());
            p.extend_from_slice(&height.to_le_bytes());
        } else {
            p.extend_from_slice(&[0x01, 0x00, 0x00]);
        }
        p
    }

    const HEIGHTS: [u16; 3] = [180, 360, 720];

    /// Feed one frame on each of three simulcast streams, temporal pattern 0,2,1,2; returns
    /// every forward it produced.
    fn feed_frame(
        f: &mut Forwarder<u32>,
        n: u64,
        key: bool,
        now: Instant,
        out: &mut Vec<Forward<u32>>,
    ) -> Vec<Forward<u32>> {
        let mut all = Vec::new();
        let tid = if key { 0 } else { [0u8, 2, 1, 2][(n % 4) as usize] };
        for stream in 0..3u8 {
            let m = PacketMeta { seq: 1000 * stream as u64 + n, ts: 3000 * n as u32, marker: true, stream, dd: None };
            let p = vp8(100 * stream as u16 + n as u16, (n / 4) as u8, tid, key, HEIGHTS[stream as usize]);
            f.on_packet(1, m, &p, now, out);
            all.extend(out.iter().copied());
        }
        all
    }

    #[test]
    fn simulcast_constraint_keeps_a_small_tile_on_the_small_stream() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 1, t0); // unconstrained
        f.subscribe(1, 2, t0);
        f.set_constraint(1, 2, Constraint { max_height: 180, ..Default::default() }, t0);
        let mut got: std::collections::HashMap<u32, Vec<Forward<u32>>> = Default::default();
        for n in 0..40u64 {
            let now = t0 + Duration::from_millis(33 * n);
            for fw in feed_frame(&mut f, n, n % 20 == 0, now, &mut out) {
                got.entry(fw.to).or_default().push(fw);
            }
        }
        assert_eq!(f.current_layer(1, 2).map(|c| c.spatial), Some(0));
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(2));
        // Each got exactly one stream: 40 frames, one packet each, numbered without gaps.
        for sub in [1, 2] {
            let v = &got[&sub];
            assert_eq!(v.len(), 40, "subscriber {sub}");
            assert!(v.windows(2).all(|w| w[1].seq == w[0].seq + 1), "subscriber {sub}: gap");
            let pids: Vec<u16> = v.iter().map(|f| f.vp8.unwrap().0).collect();
            assert!(pids.windows(2).all(|w| w[1] == w[0] + 1), "subscriber {sub}: picture ids {pids:?}");
        }
    }

    #[test]
    fn a_link_takes_every_simulcast_stream_each_from_its_keyframe() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        assert_eq!(f.relayed_streams(1), 3);
        // A tile that waits for the top stream does not keep the link from asking for the others.
        f.subscribe(1, 1, t0);
        f.subscribe_all_streams(1, 9, t0);
        // Deltas first: the link asks for each stream's keyframe as that stream's packets come
        // (the top one was asked for when the tile subscribed).
        let mut asked = std::collections::BTreeSet::new();
        for stream in 0..3u8 {
            let m = PacketMeta { seq: 1000 * stream as u64, ts: 0, marker: true, stream, dd: None };
            let o = f.on_packet(1, m, &vp8(1, 0, 0, false, HEIGHTS[stream as usize]), t0, &mut out);
            assert!(out.is_empty(), "a delta before the keyframe went to {out:?}");
            asked.extend(o.request_keyframe);
        }
        assert_eq!(asked.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        f.set_constraint(1, 1, Constraint { max_height: 180, ..Default::default() }, t0);
        let mut link: Vec<Forward<u32>> = Vec::new();
        for n in 1..41u64 {
            let now = t0 + Duration::from_millis(33 * n);
            let fw = feed_frame(&mut f, n, n == 1, now, &mut out);
            link.extend(fw.iter().filter(|f| f.to == 9));
            // The tile beside it still gets one stream, picked here.
            assert!(fw.iter().filter(|f| f.to == 1).all(|f| f.stream == 0));
        }
        // Every packet of every stream, on the output stream of the same index, each numbered on
        // its own without gaps, payloads untouched (no picture id rewrite).
        for stream in 0..3u8 {
            let v: Vec<&Forward<u32>> = link.iter().filter(|f| f.stream == stream).collect();
            assert_eq!(v.len(), 40, "stream {stream}");
            assert!(v.windows(2).all(|w| w[1].seq == w[0].seq + 1), "stream {stream}: gap");
            assert!(v.iter().all(|f| f.vp8.is_none()));
        }
        assert_eq!(f.needed_layer(1), Some(2), "the link keeps the top stream on at the publisher");
        // After a mute, each stream goes on from its next keyframe (the far end's decoders
        // missed what came before).
        let at = t0 + Duration::from_millis(33 * 41);
        f.set_muted(1, true, at);
        f.set_muted(1, false, at);
        let fw = feed_frame(&mut f, 42, false, at, &mut out);
        assert!(fw.iter().all(|f| f.to != 9), "a delta frame after unmute crossed: {fw:?}");
        let fw = feed_frame(&mut f, 43, true, at, &mut out);
        assert_eq!(fw.iter().filter(|f| f.to == 9).count(), 3, "each stream's keyframe crosses");
        // A keyframe request from beyond the link names its stream.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(f.on_keyframe_request(1, 9, 1, later).request_keyframe, Some(1));
        // Beyond the link only the lowest stream is watched: the others stay here, and the
        // publisher may switch them off.
        f.set_relay_top(1, 9, 0);
        assert_eq!(f.needed_layer(1), Some(0));
        let fw = feed_frame(&mut f, 44, false, later, &mut out);
        assert_eq!(fw.iter().filter(|f| f.to == 9).map(|f| f.stream).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn a_links_grant_caps_the_streams_that_cross_and_each_costs_what_is_below_it() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        f.subscribe_all_streams(1, 9, t0);
        for n in 0..80u64 {
            feed_frame(&mut f, n, n == 0, t0 + Duration::from_millis(33 * n), &mut out);
        }
        let now = t0 + Duration::from_millis(33 * 80);
        let d = f.demand(1, 9, 0, now).expect("a link's video has a demand");
        let own = f.layer_rates(1).unwrap();
        assert!(own[0] > 0 && own[1] > 0 && own[2] > 0, "{own:?}");
        assert_eq!(d.rates[..3], [own[0], own[0] + own[1], own[0] + own[1] + own[2]]);
        assert_eq!(d.max_layer, 2);
        // The far end wants less: so does the link.
        f.set_relay_top(1, 9, 1);
        assert_eq!(f.demand(1, 9, 0, now).unwrap().max_layer, 1);
        f.set_relay_top(1, 9, 2);
        // Granted up to stream 1: the top stream stays here, but is still wanted (the link's
        // bandwidth may come back; dynacast keeps it on, as for a squeezed viewer).
        f.set_grant(1, 9, Grant::Layer(1), now);
        let fw = feed_frame(&mut f, 80, false, now, &mut out);
        assert_eq!(fw.iter().filter(|f| f.to == 9).map(|f| f.stream).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(f.needed_layer(1), Some(2));
        // Granted again: the top stream crosses from its next keyframe, which it asks for.
        let later = now + Duration::from_secs(3);
        f.set_grant(1, 9, Grant::Layer(2), later);
        let m = PacketMeta { seq: 2081, ts: 3000 * 81, marker: true, stream: 2, dd: None };
        let o = f.on_packet(1, m, &vp8(281, 20, 1, false, HEIGHTS[2]), later, &mut out);
        assert!(out.is_empty(), "a delta frame of the top stream crossed before its keyframe");
        assert_eq!(o.request_keyframe, Some(2));
        let fw = feed_frame(&mut f, 82, true, later, &mut out);
        assert_eq!(fw.iter().filter(|f| f.to == 9).count(), 3);
        // Paused: nothing crosses; resumed, every stream waits for its keyframe.
        f.set_grant(1, 9, Grant::Paused, later);
        assert!(feed_frame(&mut f, 83, true, later, &mut out).is_empty());
        f.set_grant(1, 9, Grant::Layer(0), later);
        assert!(feed_frame(&mut f, 84, false, later, &mut out).is_empty());
        let fw = feed_frame(&mut f, 85, true, later, &mut out);
        assert_eq!(fw.iter().map(|f| f.stream).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn an_h264_keyframe_tells_its_streams_size_from_the_sps() {
        // x264 baseline SPS for 1920x1080, as a single NAL unit and in a STAP-A with the PPS.
        let sps = [
            0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00,
            0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
        ];
        assert_eq!(keyframe_size(Some(VideoCodec::H264), &sps), Some((1920, 1080)));
        let mut stap = vec![0x78, 0x00, sps.len() as u8];
        stap.extend_from_slice(&sps);
        stap.extend_from_slice(&[0x00, 0x02, 0x68, 0xce]);
        assert_eq!(keyframe_size(Some(VideoCodec::H264), &stap), Some((1920, 1080)));
        assert_eq!(keyframe_size(Some(VideoCodec::H264), &[0x65, 0x88, 0x80]), None, "an IDR slice alone");
        // A 1080p stream is too tall for a 720-px tile: once its size is known, dynacast and
        // the tile's layer stop counting it as wanted.
        let t0 = Instant::now();
        let mut f: Forwarder<u32> = Forwarder::default();
        f.add_track(1, TrackKind::Video, 90_000);
        f.set_codec(1, Some(VideoCodec::H264), 90_000);
        f.set_layer_count(1, 2);
        f.subscribe(1, 7, t0);
        f.set_constraint(1, 7, Constraint { max_height: 720, ..Default::default() }, t0);
        assert_eq!(f.needed_layer(1), Some(1), "sizes unknown: the top counts as wanted");
        let mut out = Vec::new();
        f.on_packet(1, PacketMeta { seq: 1, ts: 0, marker: false, stream: 1, dd: None }, &stap, t0, &mut out);
        assert_eq!(f.needed_layer(1), Some(0));
    }

    /// One-packet VP9 pictures of `spatials` layers: (payload, spatial) per packet; the first
    /// layer of a keyframe carries the scalability structure with 320×180 / 640×360 / 1280×720.
    fn vp9_picture(key: bool, spatials: u8) -> Vec<Vec<u8>> {
        (0..spatials)
            .map(|sid| {
                let inter = if key { 0 } else { 0x40 };
                let ss = key && sid == 0;
                // D (inter-layer dependency) only within the key picture.
                let d = u8::from(key && sid > 0);
                let mut p = vec![0x20 | inter | 0x08 | 0x04 | if ss { 0x02 } else { 0 }, (sid << 1) | d, 0];
                if ss {
                    p.push(((spatials - 1) << 5) | 0x10);
                    for (w, h) in [(320u16, 180u16), (640, 360), (1280, 720)].iter().take(spatials as usize) {
                        p.extend_from_slice(&w.to_be_bytes());
                        p.extend_from_slice(&h.to_be_bytes());
                    }
                }
                p.push(0);
                p
            })
            .collect()
    }

    #[test]
    fn vp9_svc_sizes_from_the_scalability_structure() {
        let t0 = Instant::now();
        let mut f = Forwarder::default();
        f.add_track(1, TrackKind::Video, 90_000);
        f.set_codec(1, Some(VideoCodec::Vp9), 90_000);
        f.subscribe(1, 1, t0);
        f.set_constraint(1, 1, Constraint { max_height: 400, ..Default::default() }, t0);
        let mut out = Vec::new();
        let mut got = Vec::new();
        let mut seq = 0;
        for n in 0..4u32 {
            for (sid, p) in vp9_picture(n == 0, 3).iter().enumerate() {
                seq += 1;
                let m = PacketMeta { seq, ts: 3000 * n, marker: sid == 2, stream: 0, dd: None };
                f.on_packet(1, m, p, t0, &mut out);
                got.extend(out.iter().map(|fw| (sid, fw.marker)));
            }
        }
        // A 400-px tile: S0 and S1 of the key picture, the marker on S1's end; the upper
        // layers of delta pictures do not predict from the one below (D=0), so from the second
        // delta picture on (the first one shows it) S1 goes alone.
        assert_eq!(got, [[(0, false), (1, true)].repeat(2), vec![(1, true)], vec![(1, true)]].concat());
    }

    #[test]
    fn needed_layer_follows_the_most_demanding_subscriber() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        assert_eq!(f.needed_layer(1), Some(0), "nobody watches");
        f.subscribe(1, 1, t0);
        f.set_constraint(1, 1, Constraint { max_height: 180, ..Default::default() }, t0);
        // Sizes not yet known: every layer counts as wanted, or one switched off too early
        // would never show its size.
        assert_eq!(f.needed_layer(1), Some(2));
        // Keyframes of all three streams tell their sizes (180, 360, 720).
        feed_frame(&mut f, 0, true, t0, &mut out);
        assert_eq!(f.needed_layer(1), Some(0), "a 180-px tile needs the small stream only");
        f.subscribe(1, 2, t0);
        f.set_constraint(1, 2, Constraint { max_height: 400, ..Default::default() }, t0);
        assert_eq!(f.needed_layer(1), Some(1));
        f.set_constraint(1, 2, Constraint::default(), t0);
        assert_eq!(f.needed_layer(1), Some(2), "an unlimited tile wants the top");
        // A bandwidth grant does not: the layer stays on, measured, for when the link recovers.
        f.set_grant(1, 2, Grant::Layer(1), t0);
        assert_eq!(f.needed_layer(1), Some(2), "squeezed for bandwidth, the top stays on");
        f.set_grant(1, 2, Grant::Paused, t0);
        assert_eq!(f.needed_layer(1), Some(2), "paused for bandwidth, the top stays on");
        f.set_constraint(1, 2, Constraint { paused: true, ..Default::default() }, t0);
        assert_eq!(f.needed_layer(1), Some(0), "a hidden tile needs nothing");
        assert_eq!(video_forwarder().needed_layer(1), None, "one stream: nothing to switch off");
    }

    #[test]
    fn simulcast_switches_down_at_the_low_streams_keyframe_and_back_up() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 1, t0);
        let mut now = t0;
        for n in 0..20u64 {
            now = t0 + Duration::from_millis(33 * n);
            feed_frame(&mut f, n, n == 0, now, &mut out);
        }
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(2));
        // Constrain: a keyframe is requested for stream 0; until it comes, stream 2 continues.
        let o = f.set_constraint(1, 1, Constraint { max_height: 200, ..Default::default() }, now);
        assert_eq!(o.request_keyframe, Some(0));
        let before: Vec<_> = feed_frame(&mut f, 20, false, now, &mut out);
        assert_eq!(before.len(), 1);
        let last_seq = before[0].seq;
        let switched = feed_frame(&mut f, 21, true, now + Duration::from_millis(33), &mut out);
        assert_eq!(switched.len(), 1, "only stream 0's keyframe is forwarded: {switched:?}");
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(0));
        // Lift the constraint: back up to stream 2 at its next keyframe, numbering continuous.
        f.set_constraint(1, 1, Constraint::default(), now);
        let after = feed_frame(&mut f, 22, true, now + Duration::from_millis(66), &mut out);
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(2));
        // Stream 0's copy of this frame went out before stream 2's keyframe arrived (packets of
        // the streams interleave); then the switch. Numbering stays gap-free throughout.
        assert_eq!(after.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![last_seq + 2, last_seq + 3]);
    }

    #[test]
    fn a_stream_stopped_upstream_is_left_within_half_a_second_while_the_low_one_flows() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 1, t0);
        let at = |n: u64| t0 + Duration::from_millis(33 * n);
        for n in 0..30u64 {
            feed_frame(&mut f, n, n == 0, at(n), &mut out);
        }
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(2));
        // Streams 1 and 2 stop (the sender gave them up); stream 0 goes on, a keyframe on
        // request. The subscriber is back on stream 0 once it has been 500 ms without stream 2,
        // not after the 1.5 s a silent track waits.
        let mut asked_at = None;
        let mut back_at = None;
        for n in 30..80u64 {
            let key = asked_at.is_some_and(|a| n == a + 3);
            let p =
                vp8(n as u16, (n / 4) as u8, if key { 0 } else { [0u8, 2, 1, 2][(n % 4) as usize] }, key, HEIGHTS[0]);
            let m = PacketMeta { seq: n, ts: 3000 * n as u32, marker: true, stream: 0, dd: None };
            let o = f.on_packet(1, m, &p, at(n), &mut out);
            if o.request_keyframe == Some(0) && asked_at.is_none() {
                asked_at = Some(n);
            }
            if !out.is_empty() && back_at.is_none() {
                back_at = Some(n);
            }
        }
        let (asked, back) = (asked_at.expect("stream 0's keyframe asked for"), back_at.expect("back on stream 0"));
        let stopped_for = at(asked) - at(29);
        assert!(
            stopped_for >= LAYER_STOPPED_BELOW && stopped_for < LAYER_STOPPED_BELOW + Duration::from_millis(40),
            "{stopped_for:?}"
        );
        assert_eq!(back, asked + 3, "forwarding resumes at the keyframe");
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(0));
        // A layer quiet for a third of a second is not taken for stopped.
        let mut f = simulcast_forwarder();
        f.subscribe(1, 1, t0);
        for n in 0..30u64 {
            feed_frame(&mut f, n, n == 0, at(n), &mut out);
        }
        for n in 30..40u64 {
            let p = vp8(n as u16, (n / 4) as u8, 0, false, HEIGHTS[0]);
            let m = PacketMeta { seq: n, ts: 3000 * n as u32, marker: true, stream: 0, dd: None };
            assert_eq!(f.on_packet(1, m, &p, at(n), &mut out).request_keyframe, None, "frame {n}");
        }
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(2));
    }

    #[test]
    fn temporal_constraint_drops_upper_layers_without_gaps() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 1, t0);
        f.set_constraint(1, 1, Constraint { max_temporal: 0, ..Default::default() }, t0);
        let mut got = Vec::new();
        for n in 0..16u64 {
            got.extend(feed_frame(&mut f, n, n == 0, t0 + Duration::from_millis(33 * n), &mut out));
        }
        // Only TL0 frames (every 4th) of stream 2: 4 packets, consecutive numbers and ids.
        assert_eq!(got.len(), 4);
        assert!(got.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert!(got.windows(2).all(|w| w[1].vp8.unwrap().0 == w[0].vp8.unwrap().0 + 1));
    }

    #[test]
    fn grant_caps_the_layer_and_pausing_for_bandwidth_stops_video() {
        let t0 = Instant::now();
        let mut f = simulcast_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 1, t0);
        for n in 0..40u64 {
            feed_frame(&mut f, n, n % 10 == 0, t0 + Duration::from_millis(33 * n), &mut out);
        }
        let now = t0 + Duration::from_millis(33 * 40);
        let rates = f.layer_rates(1).unwrap();
        assert!(rates[0] > 0 && rates[1] > 0 && rates[2] > 0, "rates {rates:?}");
        let d = f.demand(1, 1, 5, now).unwrap();
        assert_eq!(d.max_layer, 2);
        f.set_grant(1, 1, Grant::Layer(1), now);
        for n in 40..60u64 {
            feed_frame(&mut f, n, n % 10 == 0, t0 + Duration::from_millis(33 * n), &mut out);
        }
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(1));
        f.set_grant(1, 1, Grant::Paused, now);
        let got = feed_frame(&mut f, 60, true, now, &mut out);
        assert!(got.is_empty());
        // Resumed: starts again on a keyframe, numbering continues.
        let o = f.set_grant(1, 1, Grant::Layer(2), now);
        assert_eq!(o.request_keyframe, Some(2));
        let got = feed_frame(&mut f, 61, true, now, &mut out);
        assert_eq!(got.len(), 1);
        assert_eq!(f.current_layer(1, 1).map(|c| c.spatial), Some(2));
    }

    #[test]
    fn paused_subscription_gets_nothing_and_resumes_on_keyframe() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let mut out = Vec::new();
        f.subscribe(1, 1, t0);
        f.on_packet(1, meta(1, 0), KEY, t0, &mut out);
        assert_eq!(out.len(), 1);
        f.set_constraint(1, 1, Constraint { paused: true, ..Default::default() }, t0);
        f.on_packet(1, meta(2, 0), KEY, t0, &mut out);
        assert!(out.is_empty());
        let o = f.set_constraint(1, 1, Constraint::default(), t0 + Duration::from_secs(1));
        assert_eq!(o.request_keyframe, Some(0));
        f.on_packet(1, meta(30, 90_000), DELTA, t0 + Duration::from_secs(1), &mut out);
        assert!(out.is_empty());
        f.on_packet(1, meta(31, 93_000), KEY, t0 + Duration::from_secs(1), &mut out);
        assert_eq!(seqs(&out), vec![(1, 2)]);
    }
}
