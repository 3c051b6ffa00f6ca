//! How much FEC a subscriber's downlink calls for, the way libwebrtc mixes NACK and FEC: when
//! the round trip is short a retransmission arrives before the frame is due and FEC is wasted
//! bandwidth; as the round trip grows, repair by retransmission comes too late and parity
//! packets sent up front take over.

use std::str::FromStr;
use std::time::Duration;

/// When the SFU protects subscribers' video with FEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoFec {
    /// Never; RED/ULPFEC are not offered.
    Off,
    /// By measured loss and RTT (`fec_packets`).
    #[default]
    Auto,
    /// By measured loss as if the RTT were long: for tests and for links known to be slow.
    Always,
}

impl FromStr for VideoFec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(VideoFec::Off),
            "auto" => Ok(VideoFec::Auto),
            "always" => Ok(VideoFec::Always),
            other => Err(format!("video_fec must be off, auto or always, not {other:?}")),
        }
    }
}

impl VideoFec {
    /// FEC packets for a group of `media` packets (see `fec_packets`).
    pub fn packets(self, media: usize, loss: f32, rtt: Duration) -> usize {
        match self {
            VideoFec::Off => 0,
            VideoFec::Auto => fec_packets(media, loss, rtt),
            VideoFec::Always => fec_packets(media, loss, FULL_FEC_RTT),
        }
    }

    /// Parity per media packet for a receiver with FEC (see `fec_ratio`).
    pub fn ratio(self, loss: f32, rtt: Duration) -> f32 {
        match self {
            VideoFec::Off => 0.0,
            VideoFec::Auto => fec_ratio(loss, rtt),
            VideoFec::Always => fec_ratio(loss, FULL_FEC_RTT),
        }
    }
}

/// Below this RTT retransmission alone repairs in time.
pub const NACK_ONLY_RTT: Duration = Duration::from_millis(20);
/// From this RTT the full protection for the measured loss is sent. Measured with Chromium at
/// 50 ms RTT (docs/benchmarks.md): full protection froze video 1.0 % of the time at 30 % loss,
/// the protection scaled for a 100 ms ceiling 2.4 %, retransmission alone 9 %.
pub const FULL_FEC_RTT: Duration = Duration::from_millis(50);
/// Parity packets never exceed this share of the media packets.
pub const MAX_RATIO: f32 = 0.5;

/// FEC packets to send for a group of `media` packets, at downlink `loss` (0..1) and `rtt`.
///
/// The ratio is twice the loss (one parity per two expected losses is about what XOR parity
/// over interleaved groups needs to repair most single losses), capped at `MAX_RATIO`, and
/// scaled from 0 at `NACK_ONLY_RTT` to 1 at `FULL_FEC_RTT`. Loss under 1 % gets none.
pub fn fec_packets(media: usize, loss: f32, rtt: Duration) -> usize {
    if media == 0 {
        return 0;
    }
    (media as f32 * fec_ratio(loss, rtt)).ceil() as usize
}

/// Parity packets per media packet at downlink `loss` and `rtt` (see `fec_packets`).
pub fn fec_ratio(loss: f32, rtt: Duration) -> f32 {
    if !loss.is_finite() || loss < 0.01 || rtt <= NACK_ONLY_RTT {
        return 0.0;
    }
    let span = (FULL_FEC_RTT - NACK_ONLY_RTT).as_secs_f32();
    let scale = ((rtt - NACK_ONLY_RTT).as_secs_f32() / span).min(1.0);
    (2.0 * loss).min(MAX_RATIO) * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn nack_alone_on_short_round_trips() {
        assert_eq!(fec_packets(10, 0.3, MS(1)), 0);
        assert_eq!(fec_packets(10, 0.3, NACK_ONLY_RTT), 0);
    }

    #[test]
    fn no_loss_no_fec() {
        assert_eq!(fec_packets(10, 0.0, MS(200)), 0);
        assert_eq!(fec_packets(10, f32::NAN, MS(200)), 0);
        assert_eq!(fec_packets(0, 0.3, MS(200)), 0);
    }

    #[test]
    fn protection_grows_with_loss_and_round_trip() {
        // Full scale: twice the loss, capped at half the media packets.
        assert_eq!(fec_packets(10, 0.1, MS(150)), 2);
        assert_eq!(fec_packets(10, 0.3, MS(150)), 5);
        assert_eq!(fec_packets(10, 0.8, MS(150)), 5);
        // Half way between the thresholds: half the protection (rounded up).
        assert_eq!(fec_packets(10, 0.3, MS(35)), 3);
        // Growing RTT never lowers protection.
        let mut last = 0;
        for rtt in (0..200).step_by(5) {
            let n = fec_packets(20, 0.2, MS(rtt));
            assert!(n >= last, "rtt {rtt}: {n} < {last}");
            last = n;
        }
    }
}
