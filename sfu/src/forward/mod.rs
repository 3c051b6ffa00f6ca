//! The room forwarder: which packet of which track goes to which subscriber, with what sequence
//! number and timestamp. Sans-IO: no sockets, no str0m, time is an argument, so every decision
//! is unit-tested with a driven clock.
//!
//! Rules it enforces:
//! - a new subscriber (or one switched to a new source, or resumed) starts on a keyframe, and a
//!   keyframe is requested from the publisher for it, merged across subscribers by a gate;
//! - a muted track is not forwarded at all;
//! - output sequence numbers and timestamps are continuous per subscriber (see `rewrite`).

mod keyframe_gate;
mod rewrite;

pub use keyframe_gate::KeyframeGate;
pub use rewrite::SeqTsRewriter;

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::codec::{starts_keyframe, VideoCodec};
use crate::ids::TrackId;

/// At most one keyframe request per publisher track per this interval.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// While a subscriber still waits for its first keyframe, ask again this often.
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(1000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// One incoming packet, as far as forwarding cares.
#[derive(Clone, Copy, Debug)]
pub struct PacketMeta {
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    pub ts: u32,
}

/// One packet to write to one subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward<S> {
    pub to: S,
    pub seq: u64,
    pub ts: u32,
}

/// What the caller must do besides writing the forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Ask the publisher of this track for a keyframe now.
    pub request_keyframe: bool,
}

#[derive(Debug)]
struct Subscription<S> {
    to: S,
    rewriter: SeqTsRewriter,
    awaiting_keyframe: bool,
}

#[derive(Debug)]
struct Track<S> {
    kind: TrackKind,
    codec: Option<VideoCodec>,
    clock_rate: u32,
    muted: bool,
    subs: Vec<Subscription<S>>,
    gate: KeyframeGate,
    /// Last time a keyframe was requested on behalf of waiting subscribers.
    waiting_since_request: Option<Instant>,
}

/// Rewriter state of subscriptions detached from their track, kept so a later subscription
/// of the same slot continues the same numbering (WHEP source switch).
pub struct Forwarder<S> {
    tracks: HashMap<TrackId, Track<S>>,
    detached: HashMap<S, SeqTsRewriter>,
}

impl<S: Copy + Eq + Hash> Default for Forwarder<S> {
    fn default() -> Self {
        Self { tracks: HashMap::new(), detached: HashMap::new() }
    }
}

impl<S: Copy + Eq + Hash> Forwarder<S> {
    pub fn add_track(&mut self, track: TrackId, kind: TrackKind, clock_rate: u32) {
        self.tracks.entry(track).or_insert_with(|| Track {
            kind,
            codec: None,
            clock_rate,
            muted: false,
            subs: Vec::new(),
            gate: KeyframeGate::new(KEYFRAME_REQUEST_INTERVAL),
            waiting_since_request: None,
        });
    }

    /// The codec is learnt from the first packet's payload type.
    pub fn set_codec(&mut self, track: TrackId, codec: Option<VideoCodec>, clock_rate: u32) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.codec = codec;
            t.clock_rate = clock_rate;
            for s in &mut t.subs {
                s.rewriter.set_clock_rate(clock_rate);
            }
        }
    }

    pub fn has_track(&self, track: TrackId) -> bool {
        self.tracks.contains_key(&track)
    }

    /// Remove a track; its subscribers keep their numbering for whatever they get next.
    pub fn remove_track(&mut self, track: TrackId) -> Vec<S> {
        let Some(t) = self.tracks.remove(&track) else {
            return Vec::new();
        };
        t.subs
            .into_iter()
            .map(|s| {
                self.detached.insert(s.to, s.rewriter);
                s.to
            })
            .collect()
    }

    /// Subscribe `to` to `track`. Returns whether a keyframe should be requested now.
    pub fn subscribe(&mut self, track: TrackId, to: S, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else {
            return Outcome::default();
        };
        if t.subs.iter().any(|s| s.to == to) {
            return Outcome::default();
        }
        let mut rewriter = self.detached.remove(&to).unwrap_or_else(|| SeqTsRewriter::new(t.clock_rate));
        rewriter.set_clock_rate(t.clock_rate);
        rewriter.rebase();
        let video = t.kind == TrackKind::Video;
        t.subs.push(Subscription { to, rewriter, awaiting_keyframe: video });
        let request_keyframe = video && t.gate.allow(now);
        if request_keyframe {
            t.waiting_since_request = Some(now);
        }
        Outcome { request_keyframe }
    }

    /// Stop forwarding `track` to `to`, keeping the rewriter for the slot's next source.
    pub fn unsubscribe(&mut self, track: TrackId, to: S) {
        if let Some(t) = self.tracks.get_mut(&track) {
            if let Some(i) = t.subs.iter().position(|s| s.to == to) {
                let s = t.subs.swap_remove(i);
                self.detached.insert(s.to, s.rewriter);
            }
        }
    }

    /// Forget a slot entirely (its peer is gone).
    pub fn forget(&mut self, to: S) {
        for t in self.tracks.values_mut() {
            t.subs.retain(|s| s.to != to);
        }
        self.detached.remove(&to);
    }

    /// Remove every slot matching `pred` (all slots of a peer that left).
    pub fn forget_where(&mut self, pred: impl Fn(&S) -> bool) {
        for t in self.tracks.values_mut() {
            t.subs.retain(|s| !pred(&s.to));
        }
        self.detached.retain(|k, _| !pred(k));
    }

    /// Mute stops forwarding; unmute restarts every subscriber on a keyframe.
    pub fn set_muted(&mut self, track: TrackId, muted: bool, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else {
            return Outcome::default();
        };
        if t.muted == muted {
            return Outcome::default();
        }
        t.muted = muted;
        if muted {
            return Outcome::default();
        }
        let video = t.kind == TrackKind::Video;
        for s in &mut t.subs {
            s.rewriter.rebase();
            s.awaiting_keyframe = video;
        }
        let request_keyframe = video && !t.subs.is_empty() && t.gate.allow(now);
        Outcome { request_keyframe }
    }

    /// A subscriber lost a picture: forward its PLI/FIR to the publisher, merged by the gate.
    pub fn on_keyframe_request(&mut self, track: TrackId, now: Instant) -> Outcome {
        let Some(t) = self.tracks.get_mut(&track) else {
            return Outcome::default();
        };
        Outcome { request_keyframe: t.kind == TrackKind::Video && t.gate.allow(now) }
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
        let Some(t) = self.tracks.get_mut(&track) else {
            return Outcome::default();
        };
        if t.muted || t.subs.is_empty() {
            return Outcome::default();
        }
        let keyframe = match (t.kind, t.codec) {
            (TrackKind::Audio, _) => true,
            (TrackKind::Video, Some(c)) => starts_keyframe(c, payload),
            (TrackKind::Video, None) => false,
        };
        let mut waiting = false;
        for s in &mut t.subs {
            if s.awaiting_keyframe {
                if !keyframe {
                    waiting = true;
                    continue;
                }
                s.awaiting_keyframe = false;
            }
            if let Some((seq, ts)) = s.rewriter.rewrite(meta.seq, meta.ts, now) {
                out.push(Forward { to: s.to, seq, ts });
            }
        }
        let mut outcome = Outcome::default();
        if waiting {
            let due = t.waiting_since_request.is_none_or(|r| now.saturating_duration_since(r) >= KEYFRAME_RETRY);
            if due && t.gate.allow(now) {
                t.waiting_since_request = Some(now);
                outcome.request_keyframe = true;
            }
        }
        outcome
    }

    pub fn subscriber_count(&self, track: TrackId) -> usize {
        self.tracks.get(&track).map_or(0, |t| t.subs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[0x10, 0x00]; // VP8, S=1, PID=0, P=0
    const DELTA: &[u8] = &[0x10, 0x01];

    fn video_forwarder() -> Forwarder<u32> {
        let mut f = Forwarder::default();
        f.add_track(1, TrackKind::Video, 90_000);
        f.set_codec(1, Some(VideoCodec::Vp8), 90_000);
        f
    }

    #[test]
    fn new_subscriber_waits_for_keyframe_and_requests_one() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let mut out = Vec::new();
        assert!(f.subscribe(1, 7, t0).request_keyframe);
        let o = f.on_packet(1, PacketMeta { seq: 10, ts: 0 }, DELTA, t0, &mut out);
        assert!(out.is_empty());
        // A second request so soon is merged away.
        assert!(!o.request_keyframe);
        f.on_packet(1, PacketMeta { seq: 11, ts: 3000 }, KEY, t0 + Duration::from_millis(33), &mut out);
        assert_eq!(out, vec![Forward { to: 7, seq: 11, ts: 3000 }]);
        f.on_packet(1, PacketMeta { seq: 12, ts: 3000 }, DELTA, t0 + Duration::from_millis(34), &mut out);
        assert_eq!(out, vec![Forward { to: 7, seq: 12, ts: 3000 }]);
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
            if f.on_packet(1, PacketMeta { seq: i, ts: 0 }, DELTA, now, &mut out).request_keyframe {
                requests += 1;
            }
        }
        // ~3 s of waiting, one retry per second.
        assert_eq!(requests, 2);
    }

    #[test]
    fn many_subscribers_merge_keyframe_requests() {
        let t0 = Instant::now();
        let mut f = video_forwarder();
        let asked: usize =
            (0..50u32).map(|s| f.subscribe(1, s, t0 + Duration::from_millis(s as u64)).request_keyframe as usize).sum();
        assert_eq!(asked, 1);
        let later: usize = (0..10u64)
            .map(|i| f.on_keyframe_request(1, t0 + Duration::from_millis(100 * i)).request_keyframe as usize)
            .sum();
        // At 0..900 ms: allowed at 300, 600, 900 (0 was taken by the subscribe).
        assert_eq!(later, 3);
    }

    #[test]
    fn audio_forwards_at_once_to_all_and_mute_stops_it() {
        let t0 = Instant::now();
        let mut f: Forwarder<u32> = Forwarder::default();
        f.add_track(2, TrackKind::Audio, 48_000);
        assert!(!f.subscribe(2, 1, t0).request_keyframe);
        f.subscribe(2, 2, t0);
        let mut out = Vec::new();
        f.on_packet(2, PacketMeta { seq: 100, ts: 960 }, &[1, 2, 3], t0, &mut out);
        assert_eq!(out.len(), 2);
        f.set_muted(2, true, t0);
        f.on_packet(2, PacketMeta { seq: 101, ts: 1920 }, &[1], t0, &mut out);
        assert!(out.is_empty());
        f.set_muted(2, false, t0 + Duration::from_secs(2));
        f.on_packet(2, PacketMeta { seq: 200, ts: 96_000 }, &[1], t0 + Duration::from_secs(2), &mut out);
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
        f.on_packet(1, PacketMeta { seq: 1, ts: 0 }, KEY, t0, &mut out);
        f.set_muted(1, true, t0);
        let o = f.set_muted(1, false, t0 + Duration::from_secs(1));
        assert!(o.request_keyframe);
        f.on_packet(1, PacketMeta { seq: 40, ts: 90_000 }, DELTA, t0 + Duration::from_secs(1), &mut out);
        assert!(out.is_empty());
        f.on_packet(1, PacketMeta { seq: 41, ts: 93_000 }, KEY, t0 + Duration::from_secs(1), &mut out);
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
        f.on_packet(1, PacketMeta { seq: 500, ts: 1000 }, KEY, t0, &mut out);
        f.on_packet(1, PacketMeta { seq: 501, ts: 1000 }, DELTA, t0, &mut out);
        let last = out[0];
        f.unsubscribe(1, 9);
        f.subscribe(3, 9, t0 + Duration::from_millis(100));
        f.on_packet(3, PacketMeta { seq: 9000, ts: 5 }, KEY, t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out[0].seq, last.seq + 1);
        assert_eq!(out[0].ts, last.ts + 9000);
        // Removing a track detaches its subscribers for their next source.
        assert_eq!(f.remove_track(3), vec![9]);
        assert_eq!(f.subscriber_count(3), 0);
    }

    #[test]
    fn unknown_track_and_empty_payload_are_harmless() {
        let mut f = video_forwarder();
        let mut out = vec![Forward { to: 1, seq: 1, ts: 1 }];
        let o = f.on_packet(42, PacketMeta { seq: 1, ts: 1 }, &[], Instant::now(), &mut out);
        assert!(out.is_empty());
        assert!(!o.request_keyframe);
        f.subscribe(1, 1, Instant::now());
        f.on_packet(1, PacketMeta { seq: 1, ts: 1 }, &[], Instant::now(), &mut out);
        assert!(out.is_empty());
    }
}
