//! Sequence number and timestamp continuity for one subscriber's view of a stream.
//!
//! A subscriber's decoder must never see a jump: not when it joins mid-stream, not when the
//! server switches it to another source (WHEP main speaker), not after a pause. Each
//! subscription keeps its own offsets; on a rebase the next packet continues right after the
//! last one sent, and its timestamp advances by the wall-clock time that has passed.

use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct SeqTsRewriter {
    clock_rate: u32,
    seq_offset: u64,
    ts_offset: u32,
    /// First input sequence number of the current source epoch: older packets are dropped, they
    /// would collide with numbers already used.
    epoch_start: Option<u64>,
    /// Highest input sequence number seen in this epoch.
    highest_in: u64,
    /// Input numbers at or below the last skipped one map ambiguously once the offset moved;
    /// late packets from before a skip are refused.
    skip_floor: Option<u64>,
    /// Offsets in force before each `reserve`, oldest first: (last input number they applied
    /// to, offset). A late packet from before a reservation keeps its old place.
    reserved: VecDeque<(u64, u64)>,
    last_out: Option<LastOut>,
}

/// Reservations remembered for late packets (about a second of frames).
const RESERVED_HISTORY: usize = 32;

#[derive(Debug, Clone, Copy)]
struct LastOut {
    seq: u64,
    ts: u32,
    at: Instant,
}

impl SeqTsRewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            seq_offset: 0,
            ts_offset: 0,
            epoch_start: None,
            highest_in: 0,
            skip_floor: None,
            reserved: VecDeque::new(),
            last_out: None,
        }
    }

    /// The next packet starts a new source epoch (new source, or after a pause).
    pub fn rebase(&mut self) {
        self.epoch_start = None;
    }

    /// A packet of the followed stream is deliberately not forwarded (a dropped temporal layer):
    /// the following packets close the gap so the receiver sees no loss.
    pub fn skip(&mut self, seq: u64) {
        if self.epoch_start.is_none() || seq <= self.highest_in {
            return;
        }
        self.highest_in = seq;
        self.seq_offset = self.seq_offset.wrapping_sub(1);
        self.skip_floor = Some(seq);
        // Everything before the skip is refused now; older reservations no longer matter.
        self.reserved.clear();
    }

    /// Keep `n` output sequence numbers free after the newest packet (for packets the sender
    /// adds, such as FEC) and return the first of them; `None` before any output.
    pub fn reserve(&mut self, n: u64) -> Option<u64> {
        self.epoch_start?;
        let first = self.highest_in.wrapping_add(self.seq_offset).wrapping_add(1);
        if n == 0 {
            return Some(first);
        }
        if self.reserved.len() == RESERVED_HISTORY {
            // Late packets older than the history can no longer be placed.
            if let Some((boundary, _)) = self.reserved.pop_front() {
                self.skip_floor = Some(self.skip_floor.map_or(boundary + 1, |f| f.max(boundary + 1)));
            }
        }
        self.reserved.push_back((self.highest_in, self.seq_offset));
        self.seq_offset = self.seq_offset.wrapping_add(n);
        if let Some(last) = self.last_out.as_mut() {
            last.seq = last.seq.max(first + n - 1);
        }
        Some(first)
    }

    /// Set the clock rate of the source feeding this subscription (it may change on a switch).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate.max(1);
    }

    /// Map an input (extended sequence number, RTP timestamp) to the output pair, or `None` when
    /// the packet predates the current epoch.
    pub fn rewrite(&mut self, seq: u64, ts: u32, now: Instant) -> Option<(u64, u32)> {
        match self.epoch_start {
            None => {
                let (out_seq, out_ts) = match self.last_out {
                    // Keep the first output sequence numbers below 2^15 so the receiver's
                    // rollover counter starts at zero (SRTP needs no out-of-band ROC then).
                    None => (seq & 0x7fff, ts),
                    Some(last) => {
                        let elapsed = now.saturating_duration_since(last.at);
                        let ticks = (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000).max(1);
                        (last.seq + 1, last.ts.wrapping_add(ticks as u32))
                    }
                };
                self.seq_offset = out_seq.wrapping_sub(seq);
                self.ts_offset = out_ts.wrapping_sub(ts);
                self.epoch_start = Some(seq);
                self.highest_in = seq;
                self.skip_floor = None;
                self.reserved.clear();
            }
            Some(start) if seq < start => return None,
            Some(_) if self.skip_floor.is_some_and(|f| seq < f) => return None,
            Some(_) => {}
        }
        self.highest_in = self.highest_in.max(seq);
        let offset = self.reserved.iter().find(|(boundary, _)| seq <= *boundary).map_or(self.seq_offset, |r| r.1);
        let out_seq = seq.wrapping_add(offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        if self.last_out.is_none_or(|l| out_seq > l.seq) {
            self.last_out = Some(LastOut { seq: out_seq, ts: out_ts, at: now });
        }
        Some((out_seq, out_ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_packet_starts_low_and_keeps_gaps() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        assert_eq!(r.rewrite(70_000 + 5, 1000, t0), Some((4469, 1000)));
        // A lost packet stays a gap so the receiver can NACK or conceal it.
        assert_eq!(r.rewrite(70_000 + 7, 4000, t0), Some((4471, 4000)));
        // A late reordered packet still maps into its place.
        assert_eq!(r.rewrite(70_000 + 6, 4000, t0), Some((4470, 4000)));
    }

    #[test]
    fn source_switch_continues_without_jump() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        for i in 0..10u64 {
            r.rewrite(100 + i, 3000 * i as u32, t0 + Duration::from_millis(33 * i));
        }
        let last = r.rewrite(109, 27_000, t0 + Duration::from_millis(297)).unwrap();
        r.rebase();
        // New source with unrelated numbering, 100 ms later.
        let (seq, ts) = r.rewrite(50_000, 999_999, t0 + Duration::from_millis(397)).unwrap();
        assert_eq!(seq, last.0 + 1);
        assert_eq!(ts, last.1 + 9000);
        // Packets of the new source before its first forwarded one are refused.
        assert_eq!(r.rewrite(49_999, 999_000, t0 + Duration::from_millis(400)), None);
        assert_eq!(r.rewrite(50_001, 1_002_999, t0 + Duration::from_millis(430)).unwrap().0, seq + 1);
    }

    #[test]
    fn skipped_packets_close_the_gap() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        assert_eq!(r.rewrite(10, 0, t0).unwrap().0, 10);
        r.skip(11);
        r.skip(12);
        assert_eq!(r.rewrite(13, 3000, t0).unwrap().0, 11);
        // A real loss (14 never arrives) stays visible.
        assert_eq!(r.rewrite(15, 6000, t0).unwrap().0, 13);
        // A late packet from before the last skip would collide: refused.
        assert_eq!(r.rewrite(11, 0, t0), None);
        // Skips before any output do nothing.
        let mut fresh = SeqTsRewriter::new(90_000);
        fresh.skip(5);
        assert_eq!(fresh.rewrite(6, 0, t0).unwrap().0, 6);
    }

    #[test]
    fn reserved_numbers_are_left_free_and_late_packets_keep_their_place() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        assert_eq!(r.reserve(2), None, "nothing sent yet");
        assert_eq!(r.rewrite(10, 0, t0).unwrap().0, 10);
        assert_eq!(r.rewrite(12, 0, t0).unwrap().0, 12);
        // Two FEC packets after 12: they take 13 and 14.
        assert_eq!(r.reserve(2), Some(13));
        assert_eq!(r.rewrite(13, 3000, t0).unwrap().0, 15);
        // 11 arrives late (a retransmission from the publisher): it keeps its old place.
        assert_eq!(r.rewrite(11, 0, t0).unwrap().0, 11);
        assert_eq!(r.reserve(1), Some(16));
        assert_eq!(r.rewrite(14, 6000, t0).unwrap().0, 17);
        // Long history: reservations beyond it refuse the oldest late packets instead.
        for i in 0..(RESERVED_HISTORY as u64 + 1) {
            r.rewrite(15 + i, 0, t0);
            r.reserve(1);
        }
        assert_eq!(r.rewrite(11, 0, t0), None);
    }

    #[test]
    fn timestamp_wraps() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(48_000);
        let (_, a) = r.rewrite(1, u32::MAX - 100, t0).unwrap();
        let (_, b) = r.rewrite(2, 860, t0).unwrap();
        assert_eq!(b.wrapping_sub(a), 961);
    }
}
