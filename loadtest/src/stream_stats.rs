//! What one receiver measures about one incoming RTP stream, sans IO: packets, loss (from the
//! extended sequence numbers, duplicates and retransmissions counted once), interarrival jitter
//! (RFC 3550 §6.4.1) and end-to-end latency (arrival minus the publisher's capture instant).

use std::time::{Duration, Instant, SystemTime};

use crate::histogram::Histogram;

/// Sequence numbers remembered for duplicate detection (a retransmission arrives within this).
const WINDOW: u64 = 1024;

#[derive(Debug, Clone)]
pub struct StreamStats {
    clock_rate: u32,
    first_seq: Option<u64>,
    highest_seq: u64,
    /// Bit i: `highest_seq - i` has arrived.
    seen: [u64; (WINDOW / 64) as usize],
    pub received: u64,
    pub duplicates: u64,
    /// Packets older than the window (neither counted as received nor as lost twice).
    pub too_old: u64,
    pub bytes: u64,
    jitter: f64,
    last_transit: Option<f64>,
    epoch: Option<Instant>,
    pub keyframes: u64,
    pub first_packet_at: Option<Instant>,
    pub first_keyframe_at: Option<Instant>,
    /// Frame size from the last keyframe's parameter sets, when the codec tells.
    pub resolution: Option<(u16, u16)>,
    /// Smallest arrival-minus-media-time seen, in seconds (see `delay_over_fastest`).
    fastest_transit: Option<f64>,
}

impl StreamStats {
    pub fn new(clock_rate: u32) -> Self {
        StreamStats {
            clock_rate: clock_rate.max(1),
            first_seq: None,
            highest_seq: 0,
            seen: [0; (WINDOW / 64) as usize],
            received: 0,
            duplicates: 0,
            too_old: 0,
            bytes: 0,
            jitter: 0.0,
            last_transit: None,
            epoch: None,
            keyframes: 0,
            first_packet_at: None,
            first_keyframe_at: None,
            resolution: None,
            fastest_transit: None,
        }
    }

    /// Delay of a packet beyond the fastest one of this stream: arrival time minus media time
    /// (extended RTP timestamp), less the smallest such difference so far. Publishers send
    /// frames on the media clock, so this is the delay added on the way (queueing in the SFU,
    /// fan-out bursts) without needing the capture time a server may not carry (Janus 1.1
    /// drops abs-capture-time). The first packets set the floor; it only ever drops.
    pub fn delay_over_fastest(&mut self, media_time: u64, arrived: SystemTime) -> Duration {
        let at = arrived.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let transit = at - media_time as f64 / self.clock_rate as f64;
        let fastest = self.fastest_transit.map_or(transit, |f| f.min(transit));
        self.fastest_transit = Some(fastest);
        Duration::from_secs_f64((transit - fastest).max(0.0))
    }

    fn is_seen(&self, back: u64) -> bool {
        self.seen[(back / 64) as usize] & (1 << (back % 64)) != 0
    }

    fn mark(&mut self, back: u64) {
        self.seen[(back / 64) as usize] |= 1 << (back % 64);
    }

    /// Shift the window forward by `n` sequence numbers.
    fn advance(&mut self, n: u64) {
        if n >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
            return;
        }
        let (words, bits) = ((n / 64) as usize, (n % 64) as u32);
        let len = self.seen.len();
        for i in (0..len).rev() {
            let lo = if i >= words { self.seen[i - words] } else { 0 };
            let carry = if bits > 0 && i > words { self.seen[i - words - 1] >> (64 - bits) } else { 0 };
            self.seen[i] = if bits > 0 { (lo << bits) | carry } else { lo };
        }
    }

    /// One packet: extended sequence number, RTP timestamp, payload size, when it arrived,
    /// and the capture instant it carries (if any). Returns false for a duplicate.
    pub fn on_packet(&mut self, seq: u64, rtp_ts: u32, size: usize, arrival: Instant) -> bool {
        let Some(first) = self.first_seq else {
            self.first_seq = Some(seq);
            self.highest_seq = seq;
            self.mark(0);
            self.count(rtp_ts, size, arrival);
            return true;
        };
        if seq < first {
            // Older than the first packet we saw: not part of what we account.
            self.too_old += 1;
            return false;
        }
        if seq > self.highest_seq {
            self.advance(seq - self.highest_seq);
            self.highest_seq = seq;
            self.mark(0);
        } else {
            let back = self.highest_seq - seq;
            if back >= WINDOW {
                self.too_old += 1;
                return false;
            }
            if self.is_seen(back) {
                self.duplicates += 1;
                return false;
            }
            self.mark(back);
        }
        self.count(rtp_ts, size, arrival);
        true
    }

    fn count(&mut self, rtp_ts: u32, size: usize, arrival: Instant) {
        self.received += 1;
        self.bytes += size as u64;
        self.first_packet_at.get_or_insert(arrival);
        let epoch = *self.epoch.get_or_insert(arrival);
        // Transit in RTP units (arrival clock minus media clock); jitter is its smoothed change.
        let arrival_units = arrival.duration_since(epoch).as_secs_f64() * self.clock_rate as f64;
        let transit = arrival_units - rtp_ts as f64;
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).abs();
            // A 32-bit timestamp wrap shows as a jump of 2^32 units; it is not jitter.
            if d > (u32::MAX / 2) as f64 {
                d = 0.0;
            }
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    pub fn on_keyframe(&mut self, arrival: Instant, resolution: Option<(u16, u16)>) {
        self.keyframes += 1;
        self.first_keyframe_at.get_or_insert(arrival);
        if resolution.is_some() {
            self.resolution = resolution;
        }
    }

    /// Packets the sender numbered between the first and the highest seen, minus those here.
    pub fn lost(&self) -> u64 {
        match self.first_seq {
            Some(first) => (self.highest_seq - first + 1).saturating_sub(self.received + self.too_old),
            None => 0,
        }
    }

    pub fn expected(&self) -> u64 {
        self.first_seq.map_or(0, |first| self.highest_seq - first + 1)
    }

    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter / self.clock_rate as f64)
    }
}

/// Latency of one packet from its capture instant, recorded if the clocks make sense (the
/// publisher and receiver share this machine's clock; a capture time in the future is a bug
/// or a foreign stamp and is counted apart).
pub fn record_latency(h: &mut Histogram, captured: SystemTime, arrived: SystemTime) -> bool {
    match arrived.duration_since(captured) {
        Ok(d) => {
            h.record(d);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn counts_loss_from_gaps_and_heals_with_late_retransmissions() {
        let t = Instant::now();
        let mut s = StreamStats::new(90_000);
        for seq in [100u64, 101, 103, 104, 107] {
            assert!(s.on_packet(seq, 0, 1000, t));
        }
        assert_eq!((s.expected(), s.received, s.lost()), (8, 5, 3));
        // 102 arrives late (a retransmission): one fewer lost; arriving again is a duplicate.
        assert!(s.on_packet(102, 0, 1000, t));
        assert!(!s.on_packet(102, 0, 1000, t));
        assert_eq!((s.lost(), s.duplicates, s.bytes), (2, 1, 6000));
    }

    #[test]
    fn window_shifts_across_word_boundaries() {
        let t = Instant::now();
        let mut s = StreamStats::new(48_000);
        s.on_packet(1, 0, 1, t);
        s.on_packet(70, 0, 1, t); // shift by 69: 1 is now 69 back, in the second word
        assert!(!s.on_packet(1, 0, 1, t), "1 is remembered across the shift");
        assert!(s.on_packet(5, 0, 1, t));
        s.on_packet(70 + 2000, 0, 1, t); // beyond the window: forgotten
        assert!(!s.on_packet(70, 0, 1, t));
        assert_eq!(s.too_old, 1);
        assert_eq!((s.expected(), s.received, s.lost()), (2070, 4, 2065));
    }

    #[test]
    fn steady_stream_has_no_jitter_and_a_late_packet_shows_as_jitter() {
        let t = Instant::now();
        let mut s = StreamStats::new(48_000);
        for i in 0..50u64 {
            s.on_packet(i, (i * 960) as u32, 100, at(t, i * 20));
        }
        assert!(s.jitter() < Duration::from_micros(50), "{:?}", s.jitter());
        // One packet 16 ms late: J grows by 16/16 = 1 ms, then decays.
        s.on_packet(50, 50 * 960, 100, at(t, 50 * 20 + 16));
        let j = s.jitter().as_secs_f64() * 1000.0;
        assert!((j - 1.0).abs() < 0.05, "jitter {j} ms");
    }

    #[test]
    fn delay_over_the_fastest_packet_of_the_stream() {
        let mut s = StreamStats::new(90_000);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Frames every 33.3 ms (3000 ticks); the second arrives 4 ms late, the third on time.
        assert_eq!(s.delay_over_fastest(90_000, t0), Duration::ZERO);
        let late = s.delay_over_fastest(93_000, t0 + Duration::from_micros(33_333 + 4_000));
        assert!((late.as_secs_f64() * 1e3 - 4.0).abs() < 0.01, "{late:?}");
        // A packet faster than all before lowers the floor: it is the new zero.
        assert_eq!(s.delay_over_fastest(96_000, t0 + Duration::from_micros(66_666 - 1_000)), Duration::ZERO);
        let d = s.delay_over_fastest(99_000, t0 + Duration::from_micros(100_000));
        assert!((d.as_secs_f64() * 1e3 - 1.0).abs() < 0.01, "{d:?}");
    }

    #[test]
    fn latency_from_capture_time() {
        let mut h = Histogram::default();
        let now = SystemTime::now();
        assert!(record_latency(&mut h, now - Duration::from_millis(3), now));
        assert!(!record_latency(&mut h, now + Duration::from_millis(3), now));
        assert_eq!(h.count(), 1);
        assert_eq!(h.quantile(0.5).unwrap(), Duration::from_millis(3));
    }

    #[test]
    fn first_keyframe_and_resolution() {
        let t = Instant::now();
        let mut s = StreamStats::new(90_000);
        s.on_keyframe(at(t, 40), Some((1280, 720)));
        s.on_keyframe(at(t, 90), None);
        assert_eq!((s.keyframes, s.first_keyframe_at, s.resolution), (2, Some(at(t, 40)), Some((1280, 720))));
    }
}
