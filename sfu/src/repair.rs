//! Retransmission policy for forwarded video: how much of a stream may go to resends, and how
//! many copies answer each NACK at a given downlink loss.

use std::time::Duration;

/// Share of a stream's bytes that may go to retransmission. str0m's default (15 %) stops
/// answering NACKs at about 15 % random loss, so a viewer at 20 % waited for the next keyframe.
/// 60 % keeps three copies per NACK (see `rtx_copies_for_loss`) answered up to ≈ 40 % loss and
/// still bounds the cost on a broken path.
pub const RTX_RATIO_CAP: f32 = 0.6;

/// The same share while the receiver's loss is congestion (a queue on its path overflowing):
/// str0m's own default. At a 300 kbit/s cap with the 60 % share, resends reached 170-300 kbit/s
/// beside 250-390 kbit/s of video, the link stayed at 20-50 % loss for seconds, and the loss
/// rule cut the estimate from 250 to 40 kbit/s (video paused).
pub const RTX_RATIO_CAP_CONGESTED: f32 = 0.15;
/// At most this many packets are kept for retransmission per forwarded video stream (3 s of a
/// 3 Mbit/s stream; the age below usually binds first).
pub const RTX_CACHE_PACKETS: usize = 1024;

/// How long a forwarded video packet is kept for NACKs: max(1 s, 3 × RTT), libwebrtc's packet
/// history. A packet older than that reaches the receiver after its jitter buffer has given
/// up on the frame, so keeping it only costs memory: every receiver has its own history
/// (str0m numbers its packets per receiver), and a 3 Mbit/s stream sends 310 packets a second.
pub fn rtx_history(rtt: Option<Duration>) -> Duration {
    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(3);
    let Some(rtt) = rtt else { return MIN };
    // Steps of 100 ms, so that RTT jitter does not reconfigure every stream on each report.
    let three = (rtt * 3).as_millis().div_ceil(100) as u64 * 100;
    Duration::from_millis(three).clamp(MIN, MAX)
}

/// How many copies answer one NACKed packet on a downlink that loses `loss` (0..1).
///
/// A receive-only Chromium peer connection has no RTT measurement and asks again for a
/// missing packet only every 100 ms; each round a single copy is lost with probability
/// `loss`, and a frame waiting two rounds is a visible freeze. With `n` copies a round fails
/// with `loss^n`: at 30 % loss, 0.3 → 0.027 with three copies. Copies cost only on lost
/// packets: `loss × n` of the stream's bytes.
pub fn rtx_copies_for_loss(loss: f32) -> usize {
    if !loss.is_finite() || loss < 0.05 {
        1
    } else if loss < 0.15 {
        2
    } else {
        3
    }
}

/// Retransmitted bytes per media byte on a downlink losing `loss` with `copies` per NACK:
/// each lost packet is sent `copies` more times, and one whose copies were all lost once more
/// as many (later rounds are negligible).
pub fn rtx_share(loss: f32, copies: usize) -> f32 {
    if !loss.is_finite() || loss <= 0.0 {
        return 0.0;
    }
    let copies = copies as f32;
    loss * copies * (1.0 + loss.powf(copies))
}

/// Copies for a receiver whose bandwidth allocation is short of what its tiles want: its loss
/// is (at least partly) congestion, which more copies would only deepen. One copy.
pub fn rtx_copies(loss: f32, bandwidth_limited: bool) -> usize {
    if bandwidth_limited {
        1
    } else {
        rtx_copies_for_loss(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_follows_rtt_above_one_second() {
        assert_eq!(rtx_history(None), Duration::from_secs(1));
        assert_eq!(rtx_history(Some(Duration::from_millis(50))), Duration::from_secs(1));
        assert_eq!(rtx_history(Some(Duration::from_millis(400))), Duration::from_millis(1200));
        // Rounded up to 100 ms: small RTT changes leave the history as it is.
        assert_eq!(rtx_history(Some(Duration::from_millis(401))), Duration::from_millis(1300));
        assert_eq!(rtx_history(Some(Duration::from_millis(433))), Duration::from_millis(1300));
        assert_eq!(rtx_history(Some(Duration::from_secs(5))), Duration::from_secs(3));
    }

    #[test]
    fn retransmission_costs_nothing_without_loss_and_nearly_the_media_again_at_thirty_percent() {
        assert_eq!(rtx_share(0.0, 3), 0.0);
        assert_eq!(rtx_share(f32::NAN, 3), 0.0);
        assert!((rtx_share(0.1, 1) - 0.11).abs() < 1e-6);
        let share = rtx_share(0.3, rtx_copies_for_loss(0.3));
        assert!((0.9..0.95).contains(&share), "{share}");
    }

    #[test]
    fn a_congested_receiver_gets_one_copy() {
        assert_eq!(rtx_copies(0.4, false), 3);
        assert_eq!(rtx_copies(0.4, true), 1);
    }

    #[test]
    fn copies_grow_with_loss() {
        assert_eq!(rtx_copies_for_loss(f32::NAN), 1);
        assert_eq!(rtx_copies_for_loss(0.0), 1);
        assert_eq!(rtx_copies_for_loss(0.1), 2);
        assert_eq!(rtx_copies_for_loss(0.3), 3);
        assert_eq!(rtx_copies_for_loss(0.9), 3);
    }

    #[test]
    fn the_cap_leaves_room_for_the_copies_at_forty_percent_loss() {
        // Resend bytes per original byte after every round: loss × copies, then again for the
        // packets whose copies were all lost.
        let loss: f32 = 0.4;
        let copies = rtx_copies_for_loss(loss) as f32;
        let share = rtx_share(loss, rtx_copies_for_loss(loss));
        assert!((share - (loss * copies + loss * loss.powf(copies) * copies)).abs() < 1e-6);
        let ratio = share / (1.0 + share);
        assert!(ratio < RTX_RATIO_CAP, "resend share {ratio} at 40 % loss");
    }
}
