use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp_::Bitrate;

/// Time window for averaging estimate changes.
///
/// yunshi: 1 s instead of 3 s, and a fall is emitted at once (see `poll`). An SFU moves its
/// receivers' layers on this value: averaged over 3 s, a link that dropped from 3 Mbps to
/// 500 kbps was still reported above 500 kbps for 3–4 s while its queue overflowed, and a probe
/// that proved 2 Mbps took seconds to show. The SFU's allocator has its own hysteresis.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(1);

type TimeBitrate = (Instant, Bitrate);

const TOLERANCE: f64 = 0.05;

/// Smooths BWE estimates by averaging over a time window.
pub struct EstimateSmoother {
    estimates: VecDeque<TimeBitrate>,
    maybe_emit: bool,
    emitted: Option<Bitrate>,
}

impl EstimateSmoother {
    pub fn new() -> Self {
        Self {
            estimates: VecDeque::new(),
            maybe_emit: false,
            emitted: None,
        }
    }

    /// Record a new estimate and update the smoothed average.
    pub fn record(&mut self, now: Instant, estimate: Bitrate) {
        // Did value change from previous?
        let do_update = self.estimates.back().map(|b| b.1) != Some(estimate);

        if do_update {
            self.maybe_emit = true;
            self.estimates.push_back((now, estimate));
        }

        // Remove entries older than the window.
        while let Some((time, _)) = self.estimates.front() {
            if now.duration_since(*time) > ESTIMATE_WINDOW {
                // Keep last entry
                if self.estimates.len() == 1 {
                    break;
                }

                self.maybe_emit = true;
                self.estimates.pop_front();
            } else {
                break;
            }
        }
    }

    /// Poll for an estimate to emit. Returns Some only when there's a new value to emit.
    pub fn poll(&mut self) -> Option<Bitrate> {
        if !self.maybe_emit {
            return None;
        }

        if self.estimates.is_empty() {
            return None;
        }

        let total: f64 = self.estimates.iter().map(|b| b.1.as_f64()).sum();
        let avg = total / self.estimates.len() as f64;
        // yunshi: a fall is the news that matters now; rises are averaged.
        let latest = self.estimates.back().map(|b| b.1.as_f64()).unwrap_or(avg);
        let rate: Bitrate = avg.min(latest).into();

        // This forces emitting if we have the first ever value, or a last
        // where the rest of the window is gone (estimates stop coming).
        let force = self.estimates.len() == 1 && self.emitted != Some(rate);

        // Emit if we deviate enough from previously emitted.
        let deviate = if let Some(emitted) = self.emitted {
            !in_tolerance(emitted, rate)
        } else {
            true
        };

        self.maybe_emit = false;

        // Are we not to emit?
        if !force && !deviate {
            return None;
        }

        self.emitted = Some(rate);
        Some(rate)
    }
}

fn in_tolerance(b1: Bitrate, b2: Bitrate) -> bool {
    let min = b1 * (1.0 - TOLERANCE);
    let max = b1 * (1.0 + TOLERANCE);
    b2 > min && b2 < max
}

#[cfg(test)]
mod test {
    use super::*;

    /// yunshi: a fall is emitted at once; a rise is averaged over the window.
    #[test]
    fn falls_pass_at_once_rises_are_averaged() {
        let t0 = Instant::now();
        let mut s = EstimateSmoother::new();
        s.record(t0, Bitrate::kbps(3000));
        assert_eq!(s.poll(), Some(Bitrate::kbps(3000)));
        s.record(t0 + Duration::from_millis(1500), Bitrate::kbps(500));
        assert_eq!(s.poll(), Some(Bitrate::kbps(500)));
        // A probe proves 2000: the first report is the average of the window.
        s.record(t0 + Duration::from_millis(1800), Bitrate::kbps(2000));
        assert_eq!(s.poll(), Some(Bitrate::kbps(1250)));
        // Once the 500 has left the 1-s window, the rise is complete.
        s.record(t0 + Duration::from_millis(2600), Bitrate::kbps(2000));
        assert_eq!(s.poll(), Some(Bitrate::kbps(2000)));
    }
}
