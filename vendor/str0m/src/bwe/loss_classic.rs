//! yunshi: classic loss-based control, as libWebRTC's `SendSideBandwidthEstimation` did before
//! `LossBasedBweV2` (and still does with V2 disabled).
//!
//! Why not the V2 port this replaces: on an SFU's downlink behind a capped, shallow-buffered
//! link, the V2 port stayed in its decreasing state long after loss had stopped and kept
//! lowering the estimate by ~5 % per feedback, to a fifth of what the link carried (300 kbps
//! link: 440 → 48 kbps over 10 s with no loss reported), so the SFU paused all video for tens of
//! seconds. The classic rule is three lines and does what a forwarding server needs:
//!
//! - loss ≤ 2 %: increase, to 1.08 × the lowest estimate of the last second (≈ 8 %/s);
//! - 2 % < loss ≤ 10 %: hold;
//! - loss > 10 %: decrease to estimate × (1 − loss / 2), at most once per 300 ms + RTT.
//!
//! Loss is judged over at least [`MIN_PACKETS`] reported packets, so one lost packet in a small
//! feedback does not count as 20 % loss.
//!
//! Loss counts as congestion only while the delay-based detector has seen queueing in the
//! last [`QUEUEING_MEMORY`]. A congested queue delays packets before it drops them; a radio
//! link that drops 30 % of packets whatever is sent does not, and that loss is the SFU's to
//! repair (FEC, retransmission, RED), not a reason to send less. Judged on loss alone, 30 %
//! random loss cut the estimate every 300 ms until all video was paused and audio lost its
//! redundancy (measured with `make bench-loss`, allocation on). Not seen by this rule: a
//! policer that drops without any queue, and a queue kept full at a constant delay (the
//! detector looks at the delay's trend). Judging the round trip's level against its base was
//! tried for the latter and taken out: under random loss the shortest round trip in a
//! feedback grows with the feedback interval, and 30 % random loss was then taken for
//! congestion again.
//!
//! A queue kept full is caught by the one-way delay instead ([`StandingQueue`]): when even
//! the least delayed packet of a feedback arrived [`STANDING_QUEUE`] later than the path's
//! base (its lowest over [`BASE_WINDOW`]), every packet waited in a queue, which random loss
//! does not cause. Without it, a 300 kbit/s shaper kept full by our own redundancy (RED 11
//! blocks deep, ~400 kbit/s of audio) showed constant delay, its drops were taken for the
//! link's own loss after a second, and the repair for that loss kept the queue full.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::macros::log_loss_based_bitrate_estimate;
use crate::Bitrate;
use crate::rtp_::TwccSendRecord;

/// Loss at or below which the estimate may grow.
const LOW_LOSS: f64 = 0.02;
/// Loss above which the estimate is reduced.
const HIGH_LOSS: f64 = 0.10;
/// Packets a loss figure must cover before it is acted on.
const MIN_PACKETS: u32 = 20;
/// Increases start from the lowest estimate in this window, which limits growth per second.
const INCREASE_WINDOW: Duration = Duration::from_secs(1);
const INCREASE_FACTOR: f64 = 1.08;
const INCREASE_STEP: Bitrate = Bitrate::kbps(1);
/// Minimum time between two decreases (plus the round trip, so a decrease is seen before the
/// next one is decided).
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// How long queueing seen by the delay-based detector makes loss count as congestion.
const QUEUEING_MEMORY: Duration = Duration::from_secs(1);

/// How much later than the path's base the least delayed packet of a feedback must arrive
/// for the feedback to show a standing queue. Well above the jitter of a quiet path (a few
/// ms), well below what a shaper's queue holds (50 ms in `make bench-bw`).
const STANDING_QUEUE: Duration = Duration::from_millis(15);
/// The window over which the path's base one-way delay is the lowest seen.
const BASE_WINDOW: Duration = Duration::from_secs(10);

/// The estimate never goes below this: below it not even audio fits, and an estimate of
/// nothing can only be raised by probing.
const MIN_ESTIMATE: Bitrate = Bitrate::kbps(30);

/// What the loss-based side says about the estimate.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum LossControllerState {
    /// Loss is low and the loss-based estimate is below the delay-based one: growing.
    Increasing,
    /// Loss is moderate (hold) or high (decrease): the link is loss-limited.
    Decreasing,
    /// The loss-based estimate does not limit: the delay-based estimate applies.
    DelayBased,
}

#[derive(Debug, Clone, Copy)]
pub struct LossBasedResult {
    pub bandwidth_estimate: Option<Bitrate>,
    pub state: LossControllerState,
}

pub struct LossController {
    estimate: Option<Bitrate>,
    state: LossControllerState,
    /// Packets reported (and lost) since the last decision.
    window_count: u32,
    window_lost: u32,
    last_decrease: Option<Instant>,
    /// (time, estimate) over the last [`INCREASE_WINDOW`], kept increasing in estimate so the
    /// front is the window's minimum.
    min_history: VecDeque<(Instant, Bitrate)>,
    /// When the delay-based detector last signalled overuse, or a feedback showed a standing
    /// queue (queueing).
    last_queueing: Option<Instant>,
    standing: StandingQueue,
}

/// The one-way delay of received packets (remote receive time − local send time, which
/// includes a constant clock offset) against its lowest of the last [`BASE_WINDOW`].
#[derive(Debug, Default)]
struct StandingQueue {
    /// (time, lowest delay of a feedback in µs), kept increasing in delay so the front is the
    /// window's minimum.
    base: VecDeque<(Instant, i64)>,
}

impl StandingQueue {
    /// Account one feedback; true if all of its received packets waited in a queue.
    fn update(&mut self, records: &[&TwccSendRecord], now: Instant) -> bool {
        let Some(lowest) = records.iter().filter_map(|r| one_way_micros(r)).min() else {
            return false;
        };
        while self
            .base
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > BASE_WINDOW)
        {
            self.base.pop_front();
        }
        while self.base.back().is_some_and(|&(_, d)| d >= lowest) {
            self.base.pop_back();
        }
        self.base.push_back((now, lowest));
        let base = self.base.front().map_or(lowest, |&(_, d)| d);
        lowest - base > STANDING_QUEUE.as_micros() as i64
    }
}

/// A received packet's one-way delay plus the clock offset, in µs (may be negative).
fn one_way_micros(r: &TwccSendRecord) -> Option<i64> {
    let recv = r.remote_recv_time()?;
    let sent = r.local_send_time();
    Some(match recv.checked_duration_since(sent) {
        Some(d) => d.as_micros() as i64,
        None => -(sent.duration_since(recv).as_micros() as i64),
    })
}

impl LossController {
    pub fn new() -> Self {
        Self {
            estimate: None,
            state: LossControllerState::DelayBased,
            window_count: 0,
            window_lost: 0,
            last_decrease: None,
            min_history: VecDeque::new(),
            last_queueing: None,
            standing: StandingQueue::default(),
        }
    }

    /// Whether loss now counts as congestion (queueing was seen lately).
    pub fn loss_is_congestion(&self, now: Instant) -> bool {
        self.last_queueing
            .is_some_and(|t| now.saturating_duration_since(t) <= QUEUEING_MEMORY)
    }

    /// Override the estimate (start-up, or a probe proved the link carries more).
    pub fn set_bandwidth_estimate(&mut self, estimate: Bitrate) {
        self.estimate = Some(estimate.max(MIN_ESTIMATE));
        self.min_history.clear();
    }

    pub fn loss_based_result(&self) -> LossBasedResult {
        LossBasedResult {
            bandwidth_estimate: self.estimate,
            state: self.state,
        }
    }

    /// Account one transport feedback: `records` are the packets it reports on; `overusing`
    /// is the delay-based detector's state after it; `rtt` the feedback's shortest round trip.
    pub fn update(
        &mut self,
        records: &[&TwccSendRecord],
        delay_estimate: Bitrate,
        overusing: bool,
        rtt: Option<Duration>,
        now: Instant,
    ) {
        let standing = self.standing.update(records, now);
        if overusing || standing {
            self.last_queueing = Some(now);
        }
        let lost = records
            .iter()
            .filter(|r| r.remote_recv_time().is_none())
            .count() as u32;
        self.window_count += records.len() as u32;
        self.window_lost += lost;
        let current = self.estimate.unwrap_or(delay_estimate);
        if self.window_count < MIN_PACKETS {
            self.finish(current, delay_estimate, now);
            return;
        }
        let loss = if self.loss_is_congestion(now) {
            self.window_lost as f64 / self.window_count as f64
        } else {
            0.0
        };
        self.window_count = 0;
        self.window_lost = 0;

        let next = if loss <= LOW_LOSS {
            let base = self.window_min(now).unwrap_or(current);
            (base * INCREASE_FACTOR + INCREASE_STEP).max(current)
        } else if loss <= HIGH_LOSS {
            current
        } else {
            let interval = DECREASE_INTERVAL + rtt.unwrap_or(Duration::ZERO);
            let due = self
                .last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= interval);
            if due {
                self.last_decrease = Some(now);
                current * (1.0 - loss / 2.0)
            } else {
                current
            }
        };
        self.state = if loss <= LOW_LOSS {
            LossControllerState::Increasing
        } else {
            LossControllerState::Decreasing
        };
        self.finish(next, delay_estimate, now);
    }

    fn finish(&mut self, next: Bitrate, delay_estimate: Bitrate, now: Instant) {
        let next = next.min(delay_estimate).max(MIN_ESTIMATE);
        if next >= delay_estimate && self.state == LossControllerState::Increasing {
            // Not limiting: the delay-based side decides.
            self.state = LossControllerState::DelayBased;
        }
        self.estimate = Some(next);
        log_loss_based_bitrate_estimate!(next.as_f64());
        while self.min_history.back().is_some_and(|&(_, b)| b >= next) {
            self.min_history.pop_back();
        }
        self.min_history.push_back((now, next));
    }

    fn window_min(&mut self, now: Instant) -> Option<Bitrate> {
        while self
            .min_history
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > INCREASE_WINDOW)
        {
            self.min_history.pop_front();
        }
        self.min_history.front().map(|&(_, b)| b)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::rtp_::TwccPacketId;

    /// A feedback covering `n` packets of which `lost` were lost.
    fn feedback(seq: &mut u64, n: u32, lost: u32, now: Instant) -> Vec<TwccSendRecord> {
        feedback_delayed(seq, n, lost, Duration::ZERO, now)
    }

    /// The same, with every received packet held `queued` in a queue on the way.
    fn feedback_delayed(
        seq: &mut u64,
        n: u32,
        lost: u32,
        queued: Duration,
        now: Instant,
    ) -> Vec<TwccSendRecord> {
        (0..n)
            .map(|i| {
                *seq += 1;
                let sent = now - Duration::from_millis(100);
                let received = (i >= lost).then_some(sent + Duration::from_millis(25) + queued);
                TwccSendRecord::test_new(TwccPacketId::new(*seq), sent, 1200, now, received)
            })
            .collect()
    }

    /// The loss-based estimate in whole kbps.
    fn kbps(c: &LossController) -> u64 {
        (c.loss_based_result().bandwidth_estimate.unwrap().as_f64() / 1000.0).round() as u64
    }

    /// One feedback on a congested queue (the delay detector sees queueing).
    fn run(c: &mut LossController, seq: &mut u64, n: u32, lost: u32, delay: Bitrate, now: Instant) {
        feed(c, seq, n, lost, delay, true, now);
    }

    fn feed(
        c: &mut LossController,
        seq: &mut u64,
        n: u32,
        lost: u32,
        delay: Bitrate,
        overusing: bool,
        now: Instant,
    ) {
        let records = feedback(seq, n, lost, now);
        let refs: Vec<_> = records.iter().collect();
        c.update(
            &refs,
            delay,
            overusing,
            Some(Duration::from_millis(50)),
            now,
        );
    }

    #[test]
    fn heavy_loss_decreases_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(1000));
        run(&mut c, &mut seq, 20, 8, Bitrate::mbps(5), t0); // 40 % loss
        assert_eq!(kbps(&c), 800);
        assert_eq!(c.loss_based_result().state, LossControllerState::Decreasing);
        // 100 ms later: still 40 %, but within 300 ms + RTT of the last decrease.
        run(
            &mut c,
            &mut seq,
            20,
            8,
            Bitrate::mbps(5),
            t0 + Duration::from_millis(100),
        );
        assert_eq!(kbps(&c), 800);
        run(
            &mut c,
            &mut seq,
            20,
            8,
            Bitrate::mbps(5),
            t0 + Duration::from_millis(350),
        );
        assert_eq!(kbps(&c), 640);
    }

    #[test]
    fn moderate_loss_holds() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(500));
        for i in 0..20 {
            // 5 % loss, every 100 ms for two seconds.
            run(
                &mut c,
                &mut seq,
                20,
                1,
                Bitrate::mbps(5),
                t0 + Duration::from_millis(100 * i),
            );
        }
        assert_eq!(kbps(&c), 500);
        assert_eq!(c.loss_based_result().state, LossControllerState::Decreasing);
    }

    #[test]
    fn no_loss_grows_about_eight_percent_per_second_and_never_past_the_delay_estimate() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(500));
        for i in 0..=20 {
            run(
                &mut c,
                &mut seq,
                20,
                0,
                Bitrate::mbps(5),
                t0 + Duration::from_millis(100 * i),
            );
        }
        // Two seconds at ≈ 8 %/s from 500 kbps: 1.08² ≈ 1.17, a step or so either way.
        let after = c.loss_based_result().bandwidth_estimate.unwrap().as_f64();
        assert!((560_000.0..=650_000.0).contains(&after), "{after}");
        assert_eq!(c.loss_based_result().state, LossControllerState::Increasing);

        // A low delay-based estimate caps it, and then the delay side is what limits.
        run(
            &mut c,
            &mut seq,
            20,
            0,
            Bitrate::kbps(400),
            t0 + Duration::from_millis(2100),
        );
        assert_eq!(kbps(&c), 400);
        assert_eq!(c.loss_based_result().state, LossControllerState::DelayBased);
    }

    #[test]
    fn loss_is_judged_over_enough_packets() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(500));
        // One lost packet of five: not yet a decision.
        run(&mut c, &mut seq, 5, 1, Bitrate::mbps(5), t0);
        assert_eq!(kbps(&c), 500);
        // With 20 more received, 1 of 25 (4 %): hold, not decrease.
        run(
            &mut c,
            &mut seq,
            20,
            0,
            Bitrate::mbps(5),
            t0 + Duration::from_millis(100),
        );
        assert_eq!(kbps(&c), 500);
        assert_eq!(c.loss_based_result().state, LossControllerState::Decreasing);
    }

    #[test]
    fn random_loss_without_queueing_is_not_congestion() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(1000));
        // 30 % loss in every feedback for 5 s, and the delay detector never sees a queue.
        for i in 0..50 {
            let now = t0 + Duration::from_millis(100 * i);
            feed(&mut c, &mut seq, 20, 6, Bitrate::mbps(5), false, now);
        }
        assert!(kbps(&c) > 1000, "{}", kbps(&c));
        assert_eq!(c.loss_based_result().state, LossControllerState::Increasing);
    }

    #[test]
    fn loss_counts_as_congestion_for_a_while_after_queueing() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(1000));
        // Queueing seen, no loss yet (the queue is filling).
        feed(&mut c, &mut seq, 20, 0, Bitrate::mbps(5), true, t0);
        let before = kbps(&c);
        // Half a second later the queue overflows: 40 % loss, the detector now quiet.
        let t = t0 + Duration::from_millis(500);
        feed(&mut c, &mut seq, 20, 8, Bitrate::mbps(5), false, t);
        assert!(
            kbps(&c).abs_diff(before * 8 / 10) <= 1,
            "{} {before}",
            kbps(&c)
        );
        // Long after the queueing, the same loss is taken as the link's.
        let t = t0 + Duration::from_secs(3);
        feed(&mut c, &mut seq, 20, 8, Bitrate::mbps(5), false, t);
        assert!(kbps(&c) > before * 8 / 10);
    }

    #[test]
    fn a_queue_kept_full_makes_loss_congestion_though_its_delay_is_flat() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(1000));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two seconds of a quiet path: 25 ms one way, a few ms of jitter, 30 % random loss.
        for i in 0..20 {
            let jitter = Duration::from_millis(i % 4);
            let records = feedback_delayed(&mut seq, 20, 6, jitter, at(100 * i));
            let refs: Vec<_> = records.iter().collect();
            c.update(&refs, Bitrate::mbps(5), false, None, at(100 * i));
            assert!(!c.loss_is_congestion(at(100 * i)), "random loss at {i}");
        }
        // Then a shaper's queue stays full: every packet waits 45 ms, the delay is flat (the
        // trend detector is quiet) and a third is dropped.
        let before = kbps(&c);
        for i in 20..30 {
            let records = feedback_delayed(&mut seq, 20, 7, Duration::from_millis(45), at(100 * i));
            let refs: Vec<_> = records.iter().collect();
            c.update(&refs, Bitrate::mbps(5), false, None, at(100 * i));
            assert!(c.loss_is_congestion(at(100 * i)), "standing queue at {i}");
        }
        assert!(kbps(&c) < before * 8 / 10, "{} {before}", kbps(&c));
    }

    #[test]
    fn never_below_the_floor() {
        let t0 = Instant::now();
        let mut c = LossController::new();
        let mut seq = 0;
        c.set_bandwidth_estimate(Bitrate::kbps(40));
        for i in 0..10 {
            run(
                &mut c,
                &mut seq,
                20,
                20,
                Bitrate::mbps(5),
                t0 + Duration::from_secs(i),
            );
        }
        assert_eq!(kbps(&c), 30);
    }
}
