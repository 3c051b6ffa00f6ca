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
}

impl RelayStreams {
    pub fn new(clock_rate: u32) -> Self {
        Self { streams: std::array::from_fn(|_| Stream { rewriter: SeqTsRewriter::new(clock_rate), started: false }) }
    }

    /// After a pause: every stream waits for its next keyframe again.
    pub fn restart(&mut self) {
        for s in &mut self.streams {
            s.started = false;
            s.rewriter.rebase();
        }
    }

    /// One packet of `stream`: its numbering on the same output stream, or `None` while that
    /// stream still waits for a keyframe (the caller asks the publisher for one).
    pub fn on_packet(&mut self, stream: u8, seq: u64, ts: u32, keyframe: bool, now: Instant) -> Option<(u64, u32)> {
        let s = &mut self.streams[(stream as usize).min(MAX_LAYERS - 1)];
        if !s.started {
            if !keyframe {
                return None;
            }
            s.started = true;
        }
        s.rewriter.rewrite(seq, ts, now)
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
        assert_eq!(r.on_packet(0, 100, 1000, false, now), None);
        let first2 = r.on_packet(2, 500, 9000, true, now).expect("keyframe starts stream 2");
        let next2 = r.on_packet(2, 501, 9000, false, now).expect("then its deltas");
        assert_eq!(next2.0, first2.0 + 1);
        assert_eq!(r.on_packet(0, 101, 1000, false, now), None, "stream 0 still waits");
        let first0 = r.on_packet(0, 102, 4000, true, now).expect("its keyframe");
        let next0 = r.on_packet(0, 103, 4000, false, now).unwrap();
        assert_eq!(next0.0, first0.0 + 1);
        // A lost packet on the way in stays a gap (the far end NACKs it from here).
        let after_gap = r.on_packet(2, 504, 12000, false, now).unwrap();
        assert_eq!(after_gap.0, next2.0 + 3);
    }

    #[test]
    fn after_a_restart_every_stream_waits_for_a_keyframe_and_numbering_continues() {
        let now = Instant::now();
        let mut r = RelayStreams::new(90_000);
        r.on_packet(1, 10, 0, true, now).unwrap();
        let last = r.on_packet(1, 11, 0, false, now).unwrap();
        r.restart();
        assert_eq!(r.on_packet(1, 50, 90_000, false, now), None);
        let resumed = r.on_packet(1, 51, 90_000, true, now).unwrap();
        assert!(resumed.0 > last.0, "numbering goes on: {resumed:?} after {last:?}");
        assert!(resumed.0 - last.0 < 10, "without the publisher's jump: {resumed:?} after {last:?}");
    }
}
