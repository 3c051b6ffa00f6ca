//! Bandwidth allocation for one subscriber: the send-side estimate of its connection is shared
//! among the video tracks it receives, by priority (active speaker first, then bigger tiles).
//!
//! Audio is reserved first and never starved. Every video first gets its lowest layer if it
//! fits, otherwise it is paused (video goes before audio suffers); then, in priority order,
//! each is raised as far as its constraint and the remaining budget allow. Moving up needs 15%
//! headroom and holding a layer does not, so a steady estimate gives a steady choice.
//!
//! Holding is judged on the current estimate, raising on the lowest estimate of the last
//! [`RAISE_PROOF`] ([`EstimateHistory`]): a probe on a link with a token-bucket shaper reads
//! high (the bucket's burst passes at line rate), and raising on that one reading switched a
//! 1 Mbps receiver from 360p to 720p and back within half a second, over and over.
//!
//! A video already flowing moves up one layer at a time, and the next raise waits until the
//! estimate has held for [`RAISE_PROOF`] with the raised layer flowing. Behind a 500 kbit/s
//! shaper an estimate that read high for half a second (a probe's burst through the bucket,
//! with only 180p on the link to contradict it) took a receiver from 180p straight to 720p,
//! which the link could not carry; one step up puts the higher layer's traffic on the link,
//! which either proves the estimate or brings it down before the next step.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Per-layer bitrates of a track as received from the publisher (bits/s; 0 = not sent).
/// For SVC the rate of layer i includes the layers below it.
pub type LayerRates = [u64; crate::forward::MAX_LAYERS];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    /// Higher is served first.
    pub priority: u32,
    /// Highest layer the subscriber's constraint allows (tile size).
    pub max_layer: u8,
    pub rates: LayerRates,
    /// Layer granted last time, for hysteresis.
    pub current: Option<u8>,
}

/// What a video whose rates are not measured yet (it just started) is taken to need. Asked
/// only for the audio it knew the rate of, str0m sent its start-up probes at 96 kbit/s, took
/// the result for the estimate (1.5 Mbit/s → 42 kbit/s on loopback) and video began paused.
pub const UNMEASURED_VIDEO_BPS: u64 = 1_500_000;

impl Demand {
    /// Whether any layer's rate is known.
    pub fn measured(&self) -> bool {
        self.rates.iter().any(|&r| r > 0)
    }

    /// What forwarding up to `layer` costs: its measured rate, or [`UNMEASURED_VIDEO_BPS`]
    /// before anything is measured.
    pub fn cost(&self, layer: u8) -> u64 {
        if self.measured() {
            self.rates.get(layer as usize).copied().unwrap_or(0)
        } else {
            UNMEASURED_VIDEO_BPS
        }
    }

    /// The same demand costed on the wire: each layer's rate plus `share` of it for the
    /// retransmissions and FEC parity that protect it. At 30 % random loss these cost about as
    /// much again as the media; left out, a receiver's layers filled its estimate and the
    /// repair queued behind them in the pacer (video froze 3.5-9 % of the time instead of ≤ 1 %).
    pub fn protected(mut self, share: f32) -> Self {
        let factor = 1.0 + f64::from(share.max(0.0));
        for r in &mut self.rates {
            *r = (*r as f64 * factor).round() as u64;
        }
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Forward up to this layer.
    Layer(u8),
    /// Not enough bandwidth even for the lowest layer: forward no video.
    Paused,
}

/// Headroom a layer must leave before we move up to it.
const UP_HEADROOM: f64 = 1.15;
/// A layer already granted is kept until the estimate falls this far below its cost: estimates
/// wobble by ±20 % around a steady link, and each switch up costs a keyframe.
const HOLD_TOLERANCE: f64 = 0.8;
/// A video's lowest layer is held until the estimate falls this far below its cost, and only
/// then paused. Pausing is costly to undo: what is left to measure the link with is audio and
/// padding, small packets whose headers the estimate does not count, and behind a 300 kbit/s
/// shaper that estimate settled at 150-180 kbit/s, too low ever to resume 180p (~150 kbit/s),
/// while with the video flowing it read 200-230 kbit/s. Below this the video is paused
/// before the audio suffers.
const LOWEST_HOLD_TOLERANCE: f64 = 0.6;
/// We ask the estimator to probe this far above what the best layers need, so the estimate
/// is not pinned to exactly the rate we send (where any wobble would look like too little).
const PROBE_HEADROOM: f64 = 1.5;

/// How long an estimate must have held before layers are raised on it.
pub const RAISE_PROOF: Duration = Duration::from_millis(500);

/// A receiver's bandwidth estimate: what it is now (for holding layers) and the lowest it has
/// been over the last [`RAISE_PROOF`] (for raising them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    pub now: u64,
    pub proven: u64,
    /// The estimator counts the receiver's loss as congestion (a queue on its path is
    /// overflowing): layers above the lowest are then held only while they fit, without
    /// [`HOLD_TOLERANCE`]. With it, 360p (~400 kbit/s on the wire) and 80 kbit/s of audio were
    /// kept for 8-10 s behind a 500 kbit/s cap that was dropping packets.
    pub congested: bool,
    /// Within [`STARTUP`] of the receiver's first estimate: the estimate is still the
    /// configured guess or the first probes' answer, and no video's lowest layer is paused on it.
    pub starting: bool,
    /// No video of this receiver was raised within the last [`RAISE_PROOF`]: a video already
    /// flowing may move up a layer (the estimate was proven with the last raise on the link).
    pub may_raise: bool,
}

impl Estimate {
    /// An estimate that has held for a while.
    pub fn steady(bps: u64) -> Self {
        Estimate { now: bps, proven: bps, congested: false, starting: false, may_raise: true }
    }

    /// The least rate str0m's pacer may send at towards this receiver (bits/s), given whether
    /// the allocation held any video back (`limited`) and what it granted. str0m paces at 1.1
    /// × the estimate, which held 1080p keyframes back ~10 ms at the 99th percentile with the
    /// link far from full (10 viewers on loopback: p99 10.6-12.8 ms against 3.2-3.4 without
    /// the estimator). A receiver that gets everything it wants with room to spare is paced as
    /// libwebrtc paces a sender, at 2.5 × the estimate (p99 3.4-3.9 ms); one held back by its
    /// bandwidth, or close to it, keeps str0m's tight pacing: bursts into a nearly full link
    /// are lost. During start-up the lowest layers are granted whatever the estimate (a guess
    /// then), and the pacer must not hold them back to it either.
    pub fn pacing_floor(&self, limited: bool, granted: u64) -> u64 {
        if self.starting {
            granted
        } else if !limited && !self.congested && granted * LOOSE_PACING_HEADROOM_X10 <= self.now * 10 {
            self.now * UNCONSTRAINED_PACE_MULTIPLIER_X10 / 10
        } else {
            0
        }
    }
}

/// libwebrtc's `kDefaultPaceMultiplier` (2.5), in tenths.
const UNCONSTRAINED_PACE_MULTIPLIER_X10: u64 = 25;
/// Loose pacing needs the estimate at least 1.5 × what is granted, in tenths (a 720p viewer
/// behind a 1 Mbit/s cap is near full; on loopback a 1080p viewer's estimate settles at ~2 ×).
const LOOSE_PACING_HEADROOM_X10: u64 = 15;

/// How long a receiver's estimate is taken as a start-up guess. str0m begins at a configured
/// rate (1.5 Mbit/s) and probes at 3 and 6 times that once media can flow; its answer must
/// then hold for [`RAISE_PROOF`] before a paused video starts. A viewer of one 1080p stream
/// (3.4 Mbit/s, one layer) whose first estimate came before its first keyframe was paused on
/// the guess: 100 viewers joining at once, join → first keyframe p99 1.7-3.7 s (p50 250 ms),
/// against 340 ms with allocation off. As LiveKit's allocator does until it sees congestion,
/// each video gets at least its lowest layer meanwhile; a link that cannot carry it shows so
/// in the estimate, and the hold rules pause it after this.
pub const STARTUP: Duration = Duration::from_secs(2);

/// The estimates of the last [`RAISE_PROOF`], enough to say the lowest in force during it.
#[derive(Debug, Default)]
pub struct EstimateHistory {
    /// (since, bps), oldest first; the first entry may have started before the window.
    entries: VecDeque<(Instant, u64)>,
    /// When the first estimate came.
    first: Option<Instant>,
    /// When a video already flowing was last raised (see [`Estimate::may_raise`]).
    last_raise: Option<Instant>,
}

impl EstimateHistory {
    pub fn record(&mut self, now: Instant, bps: u64) {
        self.first.get_or_insert(now);
        self.entries.push_back((now, bps));
        self.prune(now);
    }

    /// A video already flowing was raised at `now`.
    pub fn raised(&mut self, now: Instant) {
        self.last_raise = Some(now);
    }

    /// The latest estimate, if any.
    pub fn latest(&self) -> Option<u64> {
        self.entries.back().map(|&(_, b)| b)
    }

    /// The current estimate and the lowest one in force over the last [`RAISE_PROOF`].
    pub fn estimate(&mut self, now: Instant) -> Option<Estimate> {
        self.prune(now);
        let &(_, current) = self.entries.back()?;
        let proven = self.entries.iter().map(|&(_, b)| b).min().unwrap_or(current);
        let starting = self.first.is_some_and(|first| now.saturating_duration_since(first) < STARTUP);
        let may_raise = self.last_raise.is_none_or(|t| now.saturating_duration_since(t) >= RAISE_PROOF);
        Some(Estimate { now: current, proven, congested: false, starting, may_raise })
    }

    fn prune(&mut self, now: Instant) {
        let start = now.checked_sub(RAISE_PROOF).unwrap_or(now);
        // Drop an entry once the next one was already in force at the window's start.
        while self.entries.len() > 1 && self.entries[1].0 <= start {
            self.entries.pop_front();
        }
    }
}

/// Share the estimate (minus `audio_bps`) among `demands`. Returns one grant per demand, in
/// the same order, and the bitrate this subscriber would like (for BWE probing).
pub fn allocate(estimate: Estimate, audio_bps: u64, demands: &[Demand]) -> (Vec<Grant>, u64) {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(demands[i].priority));
    // Two budgets, both charged with every grant: layers already held must fit the current
    // estimate (with tolerance), raises must fit the proven one (with headroom).
    let mut remaining = estimate.now.saturating_sub(audio_bps) as f64;
    let mut remaining_proven = estimate.proven.min(estimate.now).saturating_sub(audio_bps) as f64;
    let mut grants = vec![Grant::Paused; demands.len()];
    let mut chosen: Vec<Option<usize>> = vec![None; demands.len()];

    let layers = |d: &Demand| -> Vec<usize> {
        (0..d.rates.len()).filter(|&l| d.rates[l] > 0 && l <= d.max_layer as usize).collect()
    };

    // Pass 1: the lowest layer for everyone, in priority order.
    for &i in &order {
        let d = &demands[i];
        let Some(&low) = layers(d).first() else {
            // Nothing measured yet (the track just started): no basis to cap it.
            grants[i] = Grant::Layer(d.max_layer);
            continue;
        };
        let cost = d.rates[low] as f64;
        let fits = if estimate.starting {
            true
        } else if d.current.is_some() {
            cost * LOWEST_HOLD_TOLERANCE <= remaining
        } else {
            cost * UP_HEADROOM <= remaining_proven
        };
        if fits {
            remaining -= cost;
            remaining_proven -= cost;
            chosen[i] = Some(low);
            grants[i] = Grant::Layer(low as u8);
        }
    }
    // Pass 2: raise in priority order.
    for &i in &order {
        let d = &demands[i];
        let Some(base) = chosen[i] else { continue };
        let mut at = base;
        for l in layers(d).into_iter().filter(|&l| l > base) {
            // Measured rates need not grow with the layer (a stream the publisher is starving
            // can be cheaper than the one below): a cheaper layer costs nothing extra.
            let extra = d.rates[l].saturating_sub(d.rates[at]) as f64;
            let holding = d.current.is_some_and(|c| c as usize >= l);
            // A video already flowing is raised one layer at a time, each proven (see the
            // module's notes); one just starting goes as far as the estimate allows.
            let flowing = d.current.is_some();
            let fits = if holding {
                let tolerance = if estimate.congested { 1.0 } else { HOLD_TOLERANCE };
                d.rates[l] as f64 * tolerance - d.rates[at] as f64 <= remaining.max(0.0)
            } else {
                (!flowing || estimate.may_raise)
                    && d.rates[l] as f64 * UP_HEADROOM - d.rates[at] as f64 <= remaining_proven.max(0.0)
            };
            if fits {
                remaining -= extra;
                remaining_proven -= extra;
                at = l;
                if !holding && flowing {
                    break;
                }
            } else {
                break;
            }
        }
        chosen[i] = Some(at);
        grants[i] = Grant::Layer(at as u8);
    }
    let video: u64 = demands.iter().map(|d| layers(d).last().map_or(UNMEASURED_VIDEO_BPS, |&l| d.rates[l])).sum();
    (grants, audio_bps + (video as f64 * PROBE_HEADROOM) as u64)
}

/// The cheapest single raise from `grants`: a paused video to its lowest layer, or one video
/// one layer up, within its constraint (bits/s, with the headroom a raise needs). The
/// estimator is asked to sustain the current rate plus this much, padding if needed, so the
/// estimate can grow to where the raise fits; `None` when every video has all it wants.
pub fn next_step(demands: &[Demand], grants: &[Grant]) -> Option<u64> {
    demands
        .iter()
        .zip(grants)
        .filter_map(|(d, g)| {
            let available = (0..d.rates.len()).filter(|&l| d.rates[l] > 0 && l <= d.max_layer as usize);
            match g {
                Grant::Paused => available.min().map(|l| d.rates[l]),
                Grant::Layer(at) => {
                    let at = *at as usize;
                    available.filter(|&l| l > at).min().map(|l| d.rates[l].saturating_sub(d.rates[at]))
                }
            }
        })
        .min()
        .map(|extra| (extra as f64 * UP_HEADROOM) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMULCAST: LayerRates = [150_000, 500_000, 1_500_000, 0];

    fn demand(priority: u32, max_layer: u8) -> Demand {
        Demand { priority, max_layer, rates: SIMULCAST, current: None }
    }

    #[test]
    fn plenty_of_bandwidth_gives_each_its_constraint() {
        let (g, desired) = allocate(Estimate::steady(10_000_000), 64_000, &[demand(1, 2), demand(1, 0)]);
        assert_eq!(g, vec![Grant::Layer(2), Grant::Layer(0)]);
        assert_eq!(desired, 64_000 + (1_650_000.0 * PROBE_HEADROOM) as u64);
    }

    #[test]
    fn protection_is_paid_for_within_the_estimate() {
        // 360p (500 kbps) fits 700 kbps on a clean link; at 30 % loss its repair more than
        // doubles it and the receiver gets 180p until the estimate grows.
        let clean = demand(1, 1);
        let (g, _) = allocate(Estimate::steady(700_000), 64_000, &[clean]);
        assert_eq!(g, vec![Grant::Layer(1)]);
        let lossy = clean.protected(0.9 + 0.5);
        assert_eq!(lossy.rates[0], (SIMULCAST[0] as f64 * 2.4).round() as u64);
        let (g, _) = allocate(Estimate::steady(700_000), 64_000, &[lossy]);
        assert_eq!(g, vec![Grant::Layer(0)]);
        assert_eq!(clean.protected(0.0), clean);
    }

    #[test]
    fn an_unmeasured_video_is_asked_for_so_start_up_probes_look_for_room() {
        let new = Demand { priority: 1, max_layer: 2, rates: [0; crate::forward::MAX_LAYERS], current: None };
        let (g, desired) = allocate(Estimate::steady(1_500_000), 48_000, &[new]);
        assert_eq!(g, vec![Grant::Layer(2)]);
        assert_eq!(desired, 48_000 + (UNMEASURED_VIDEO_BPS as f64 * PROBE_HEADROOM) as u64);
        assert_eq!(new.cost(2), UNMEASURED_VIDEO_BPS);
        assert_eq!(demand(1, 2).cost(1), SIMULCAST[1]);
    }

    #[test]
    fn next_step_is_the_cheapest_raise() {
        let d = [demand(1, 2), demand(1, 1)];
        // One on q, one on h (its max): the raise is the first one's q → h.
        let step = next_step(&d, &[Grant::Layer(0), Grant::Layer(1)]);
        assert_eq!(step, Some((350_000.0 * UP_HEADROOM) as u64));
        // A paused video comes back at its lowest layer, cheaper than h → f.
        let step = next_step(&d, &[Grant::Layer(1), Grant::Paused]);
        assert_eq!(step, Some((150_000.0 * UP_HEADROOM) as u64));
        // Everyone at their constraint: nothing to probe for.
        assert_eq!(next_step(&d, &[Grant::Layer(2), Grant::Layer(1)]), None);
    }

    #[test]
    fn speaker_gets_served_first() {
        // 1 Mbps after audio: both get q (300k), then the speaker (priority 10) moves up to h
        // (+350k); 350k are left, less than the other's step to h with headroom.
        let (g, _) = allocate(Estimate::steady(1_064_000), 64_000, &[demand(1, 2), demand(10, 2)]);
        assert_eq!(g, vec![Grant::Layer(0), Grant::Layer(1)]);
    }

    #[test]
    fn video_pauses_before_audio_starves() {
        let (g, _) = allocate(Estimate::steady(200_000), 100_000, &[demand(2, 2), demand(1, 2)]);
        // 100k left for video: not even one 150k layer fits.
        assert_eq!(g, vec![Grant::Paused, Grant::Paused]);
        let (g, _) = allocate(Estimate::steady(300_000), 100_000, &[demand(2, 2), demand(1, 2)]);
        assert_eq!(g, vec![Grant::Layer(0), Grant::Paused]);
    }

    #[test]
    fn hysteresis_holds_a_layer_that_just_fits() {
        // 1.55 Mbps: moving up to f (1.5M) needs 15% headroom: refused from q...
        let mut d = demand(1, 2);
        let (g, _) = allocate(Estimate::steady(1_550_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(1)]);
        // ...but a subscriber already on f keeps it, even when the estimate dips below its cost,
        d.current = Some(2);
        let (g, _) = allocate(Estimate::steady(1_550_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(2)]);
        let (g, _) = allocate(Estimate::steady(1_250_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(2)]);
        // until it falls clearly below.
        let (g, _) = allocate(Estimate::steady(1_100_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(1)]);
        // Steady estimate, repeated: no oscillation.
        let mut cur = None;
        for _ in 0..20 {
            let (g, _) = allocate(Estimate::steady(1_550_000), 0, &[Demand { current: cur, ..demand(1, 2) }]);
            let Grant::Layer(l) = g[0] else { panic!() };
            if let Some(c) = cur {
                assert_eq!(c, l);
            }
            cur = Some(l);
        }
    }

    #[test]
    fn the_lowest_layer_is_held_longer_than_the_others() {
        // 48k audio + 180p at 150k: a new video needs 48k + 172.5k to start...
        let d = demand(1, 2);
        assert_eq!(allocate(Estimate::steady(215_000), 48_000, &[d]).0, vec![Grant::Paused]);
        assert_eq!(allocate(Estimate::steady(221_000), 48_000, &[d]).0, vec![Grant::Layer(0)]);
        // ...and once flowing keeps 180p down to 48k + 60 % of it,
        let d = Demand { current: Some(0), ..d };
        assert_eq!(allocate(Estimate::steady(140_000), 48_000, &[d]).0, vec![Grant::Layer(0)]);
        // not below: then audio would suffer.
        assert_eq!(allocate(Estimate::steady(130_000), 48_000, &[d]).0, vec![Grant::Paused]);
        // A higher layer is not held that far: 360p (500k) goes below 400k.
        let d = Demand { current: Some(1), ..d };
        assert_eq!(allocate(Estimate::steady(448_000), 48_000, &[d]).0, vec![Grant::Layer(1)]);
        assert_eq!(allocate(Estimate::steady(440_000), 48_000, &[d]).0, vec![Grant::Layer(0)]);
        // and not at all while the loss is congestion: then it must fit.
        let congested = Estimate { congested: true, ..Estimate::steady(448_000) };
        assert_eq!(allocate(congested, 48_000, &[d]).0, vec![Grant::Layer(0)]);
        let congested = Estimate { congested: true, ..Estimate::steady(548_000) };
        assert_eq!(allocate(congested, 48_000, &[d]).0, vec![Grant::Layer(1)]);
        // The lowest layer keeps its tolerance: congested or not, pausing is the last resort.
        let d = Demand { current: Some(0), ..d };
        assert_eq!(
            allocate(Estimate { congested: true, ..Estimate::steady(140_000) }, 48_000, &[d]).0,
            vec![Grant::Layer(0)]
        );
    }

    #[test]
    fn raises_wait_for_a_proven_estimate_holds_do_not() {
        // A probe just read 2 Mbps, but 600k was in force half a second ago: no raise to f.
        let d = Demand { current: Some(1), ..demand(1, 2) };
        let (g, _) = allocate(
            Estimate { now: 2_000_000, proven: 600_000, congested: false, starting: false, may_raise: true },
            0,
            &[d],
        );
        assert_eq!(g, vec![Grant::Layer(1)]);
        // Once proven, the raise happens.
        let (g, _) = allocate(Estimate::steady(2_000_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(2)]);
        // A layer already held is judged on the current estimate, not the proven low.
        let d = Demand { current: Some(2), ..demand(1, 2) };
        let (g, _) = allocate(
            Estimate { now: 1_600_000, proven: 300_000, congested: false, starting: false, may_raise: true },
            0,
            &[d],
        );
        assert_eq!(g, vec![Grant::Layer(2)]);
        // And a paused video is not resumed on an unproven reading.
        let d = demand(1, 2);
        let (g, _) = allocate(
            Estimate { now: 1_000_000, proven: 100_000, congested: false, starting: false, may_raise: true },
            0,
            &[d],
        );
        assert_eq!(g, vec![Grant::Paused]);
    }

    #[test]
    fn a_flowing_video_moves_up_one_proven_layer_at_a_time() {
        // A viewer on q whose estimate reads 3 Mbps gets h, not f at once: f waits until the
        // estimate has held with h on the link.
        let on_q = Demand { current: Some(0), ..demand(1, 2) };
        let (g, _) = allocate(Estimate::steady(3_000_000), 0, &[on_q]);
        assert_eq!(g, vec![Grant::Layer(1)]);
        // Within the proof of that raise, h is held but f is not granted.
        let on_h = Demand { current: Some(1), ..demand(1, 2) };
        let (g, _) = allocate(Estimate { may_raise: false, ..Estimate::steady(3_000_000) }, 0, &[on_h]);
        assert_eq!(g, vec![Grant::Layer(1)]);
        let (g, _) = allocate(Estimate::steady(3_000_000), 0, &[on_h]);
        assert_eq!(g, vec![Grant::Layer(2)]);
        // A video just starting (nothing granted before) goes as far as the estimate allows.
        let (g, _) = allocate(Estimate { may_raise: false, ..Estimate::steady(3_000_000) }, 0, &[demand(1, 2)]);
        assert_eq!(g, vec![Grant::Layer(2)]);
    }

    #[test]
    fn a_raise_closes_the_gate_for_the_proof_window() {
        let t0 = Instant::now();
        let mut h = EstimateHistory::default();
        h.record(t0, 2_000_000);
        assert!(h.estimate(t0).unwrap().may_raise);
        h.raised(t0);
        assert!(!h.estimate(t0 + RAISE_PROOF / 2).unwrap().may_raise);
        assert!(h.estimate(t0 + RAISE_PROOF).unwrap().may_raise);
    }

    #[test]
    fn history_reports_the_lowest_estimate_in_force_over_the_window() {
        let t0 = Instant::now();
        let mut h = EstimateHistory::default();
        assert_eq!(h.estimate(t0), None);
        assert_eq!(h.latest(), None);
        h.record(t0, 700_000);
        let t = t0 + Duration::from_secs(10);
        h.record(t, 1_300_000);
        // 200 ms after the jump, 700k was still in force at the window's start.
        assert_eq!(
            h.estimate(t + Duration::from_millis(200)),
            Some(Estimate { now: 1_300_000, proven: 700_000, congested: false, starting: false, may_raise: true })
        );
        // After RAISE_PROOF, only the new value is.
        assert_eq!(h.estimate(t + RAISE_PROOF), Some(Estimate::steady(1_300_000)));
        // A dip counts for the whole window after it.
        h.record(t + Duration::from_secs(1), 900_000);
        h.record(t + Duration::from_millis(1100), 1_400_000);
        assert_eq!(h.estimate(t + Duration::from_millis(1400)).unwrap().proven, 900_000);
        assert_eq!(h.estimate(t + Duration::from_millis(1700)).unwrap().proven, 1_400_000);
        assert_eq!(h.latest(), Some(1_400_000));
    }

    #[test]
    fn non_monotonic_rates_do_not_break_allocation() {
        let d = Demand { priority: 1, max_layer: 2, rates: [400_000, 100_000, 900_000, 0], current: Some(2) };
        let (g, _) = allocate(Estimate::steady(2_000_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(2)]);
        let (g, _) = allocate(Estimate::steady(450_000), 0, &[d]);
        assert_eq!(g, vec![Grant::Layer(1)]);
    }

    #[test]
    fn the_pacer_is_loose_while_nothing_is_held_back_and_tight_when_the_link_is_full() {
        let mut e = Estimate::steady(7_000_000);
        assert_eq!(e.pacing_floor(false, 3_600_000), 17_500_000, "everything granted: 2.5 x the estimate");
        assert_eq!(e.pacing_floor(false, 5_000_000), 0, "everything granted, but the link is near full");
        assert_eq!(e.pacing_floor(true, 3_600_000), 0, "video held back: str0m's own 1.1 x");
        e.congested = true;
        assert_eq!(e.pacing_floor(false, 3_600_000), 0, "a queue overflowing on the path: tight");
        e.starting = true;
        assert_eq!(e.pacing_floor(true, 700_000), 700_000, "start-up: at least what is granted");
    }

    #[test]
    fn a_start_up_guess_does_not_pause_the_lowest_layer() {
        // One 1080p layer (3.4 Mbit/s) and str0m's 1.5 Mbit/s starting guess.
        let d = Demand { priority: 1, max_layer: 0, rates: [3_400_000, 0, 0, 0], current: None };
        let t0 = Instant::now();
        let mut h = EstimateHistory::default();
        h.record(t0, 1_500_000);
        let e = h.estimate(t0 + Duration::from_millis(100)).unwrap();
        assert!(e.starting);
        let (g, _) = allocate(e, 80_000, &[d]);
        assert_eq!(g, vec![Grant::Layer(0)]);
        // Above the lowest layer the usual rules hold: 500k fits the guess, 1.5M does not.
        assert_eq!(allocate(e, 80_000, &[demand(1, 2)]).0, vec![Grant::Layer(1)]);
        // An estimate that stays this low pauses it once the start-up is over.
        let d = Demand { current: Some(0), ..d };
        let e = h.estimate(t0 + STARTUP).unwrap();
        assert!(!e.starting);
        assert_eq!(allocate(e, 80_000, &[d]).0, vec![Grant::Paused]);
    }

    #[test]
    fn unmeasured_tracks_are_not_capped() {
        let d = Demand { priority: 1, max_layer: 2, rates: [0; 4], current: None };
        assert_eq!(allocate(Estimate::steady(0), 0, &[d]).0, vec![Grant::Layer(2)]);
    }
}
