//! A cascade link's subscription to a simulcast track: every stream crosses, each as its own
//! output stream (the link's m-line sends the same RIDs), so the node beyond still chooses a
//! stream per viewer, as this one does. Nothing is selected or dropped here: each output
//! stream starts on its own keyframe and is numbered on its own (continuous across a pause),
//! and the payloads go on untouched (VP8 picture ids included: the stream is the publisher's).

use std::time::Instant;

use super::{SeqTsRewriter, MAX_LAYERS};

#[derive(Debug)]
struct Stream {
    rewriter: SeqTsRewriter,
    started: bool,
}

/// The per-stream state of one relayed subscription.
#[derive(Debug)]
pub struct RelayStreams {
    streams: [Stream; MAX_LAYERS],
    /// The highest stream anyone beyond the link receives (the far node's own dynacast says
    /// so): streams above it stay here, and the publisher may switch them off.
    top: u8,
    /// The highest stream the link's bandwidth allows (its allocation's grant): streams above
    /// it stay here too, but still count as wanted upstream, as a viewer's tile size does.
    cap: u8,
}

/// What to do with one packet of a relayed subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    Forward(u64, u32),
    /// Its stream waits for a keyframe: ask the publisher for one.
    Waiting,
    /// Nobody beyond the link needs its stream.
    NotNeeded,
}

impl RelayStreams {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            streams: std::array::from_fn(|_| Stream { rewriter: SeqTsRewriter::new(clock_rate), started: false }),
            top: u8::MAX,
            cap: u8::MAX,
        }
    }

    pub fn top(&self) -> u8 {
        self.top
    }

    /// The node beyond needs streams up to `top` only. A stream taken up again starts on its
    /// next keyframe.
    pub fn set_top(&mut self, top: u8) {
        self.top = top;
        self.stop_above(self.limit());
    }

    /// The link affords streams up to `cap` only (its bandwidth allocation).
    pub fn set_cap(&mut self, cap: u8) {
        self.cap = cap;
        self.stop_above(self.limit());
    }

    /// The highest stream that crosses: wanted beyond and affordable.
    pub fn limit(&self) -> u8 {
        self.top.min(self.cap)
    }

    fn stop_above(&mut self, limit: u8) {
        for s in self.streams.iter_mut().skip(limit as usize + 1) {
            if s.started {
                s.started = false;
                s.rewriter.rebase();
            }
        }
    }

    /// After a pause: every stream waits for its next keyframe again.
    pub fn restart(&mut self) {
        for s in &mut self.streams {
            s.started = false;
            s.rewriter.rebase();
        }
    }

    /// One packet of `stream`: its numbering on the same output stream, unless that stream
    /// still waits for a keyframe or is not needed.
    pub fn on_packet(&mut self, stream: u8, seq: u64, ts: u32, keyframe: bool, now: Instant) -> Relayed {
        if stream > self.limit() {
            return Relayed::NotNeeded;
        }
        let s = &mut self.streams[(stream as usize).min(MAX_LAYERS - 1)];
        if !s.started {
            if !keyframe {
                return Relayed::Waiting;
            }
            s.started = true;
        }
        match s.rewriter.rewrite(seq, ts, now) {
            Some((seq, ts)) => Relayed::Forward(seq, ts),
            None => Relayed::NotNeeded,
        }
    }

    /// Keep `n` sequence numbers free on output `stream` (FEC parity); the first of them.
    pub fn reserve(&mut self, stream: u8, n: u64) -> Option<u64> {
        self.streams[(stream as usize).min(MAX_LAYERS - 1)].rewriter.reserve(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_starts_on_its_own_keyframe_and_keeps_its_own_numbering() {
        let now = Instant::now();
        let mut r = RelayStreams::new(90_000);
        // Stream 0 has no keyframe yet; stream 2 has.
        assert_eq!(r.on_packet(0, 100, 1000, false, now), Relayed::Waiting);
        let first2 = fwd(r.on_packet(2, 500, 9000, true, now));
        let next2 = fwd(r.on_packet(2, 501, 9000, false, now));
        assert_eq!(next2, first2 + 1);
        assert_eq!(r.on_packet(0, 101, 1000, false, now), Relayed::Waiting, "stream 0 still waits");
        let first0 = fwd(r.on_packet(0, 102, 4000, true, now));
        let next0 = fwd(r.on_packet(0, 103, 4000, false, now));
        assert_eq!(next0, first0 + 1);
        // A lost packet on the way in stays a gap (the far end NACKs it from here).
        let after_gap = fwd(r.on_packet(2, 504, 12000, false, now));
        assert_eq!(after_gap, next2 + 3);
    }

    fn fwd(r: Relayed) -> u64 {
        match r {
            Relayed::Forward(seq, _) => seq,
            other => panic!("not forwarded: {other:?}"),
        }
    }

    #[test]
    fn streams_above_the_top_stay_here_and_come_back_on_a_keyframe() {
        let now = Instant::now();
        let mut r = RelayStreams::new(90_000);
        fwd(r.on_packet(0, 1, 0, true, now));
        let last2 = fwd(r.on_packet(2, 1, 0, true, now));
        r.set_top(0);
        assert_eq!(r.on_packet(2, 2, 3000, false, now), Relayed::NotNeeded);
        assert_eq!(r.on_packet(2, 3, 3000, true, now), Relayed::NotNeeded, "not even its keyframes");
        fwd(r.on_packet(0, 2, 3000, false, now));
        r.set_top(2);
        assert_eq!(r.on_packet(2, 4, 6000, false, now), Relayed::Waiting);
        let back = fwd(r.on_packet(2, 5, 6000, true, now));
        assert_eq!(back, last2 + 1, "numbered on from where it stopped");
    }

    #[test]
    fn a_cap_holds_streams_back_as_the_far_end_does_and_lifting_it_resumes_on_a_keyframe() {
        let now = Instant::now();
        let mut r = RelayStreams::new(90_000);
        fwd(r.on_packet(1, 1, 0, true, now));
        let last2 = fwd(r.on_packet(2, 1, 0, true, now));
        r.set_cap(1);
        assert_eq!(r.top(), u8::MAX, "still wanted beyond the link");
        assert_eq!(r.limit(), 1);
        assert_eq!(r.on_packet(2, 2, 3000, true, now), Relayed::NotNeeded);
        fwd(r.on_packet(1, 2, 3000, false, now));
        // The far end wanting less than the cap allows lowers the limit; the cap still holds
        // when it wants more again.
        r.set_top(0);
        assert_eq!(r.on_packet(1, 3, 6000, false, now), Relayed::NotNeeded);
        r.set_top(2);
        assert_eq!(r.limit(), 1);
        assert_eq!(r.on_packet(1, 4, 9000, false, now), Relayed::Waiting, "stream 1 starts again on a keyframe");
        r.set_cap(2);
        assert_eq!(r.on_packet(2, 5, 12000, false, now), Relayed::Waiting);
        let back = fwd(r.on_packet(2, 6, 12000, true, now));
        assert_eq!(back, last2 + 1);
    }

    #[test]
    fn after_a_restart_every_stream_waits_for_a_keyframe_and_numbering_continues() {
        let now = Instant::now();
        let mut r = RelayStreams::new(90_000);
        fwd(r.on_packet(1, 10, 0, true, now));
        let last = fwd(r.on_packet(1, 11, 0, false, now));
        r.restart();
        assert_eq!(r.on_packet(1, 50, 90_000, false, now), Relayed::Waiting);
        let resumed = fwd(r.on_packet(1, 51, 90_000, true, now));
        assert!(resumed > last, "numbering goes on: {resumed} after {last}");
        assert!(resumed - last < 10, "without the publisher's jump: {resumed} after {last}");
    }
}
