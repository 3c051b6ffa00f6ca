//! Active speaker detection from the audio-level header extension (RFC 6464), per room.
//!
//! Each audio packet carries the sender's level in -dBov (0 loudest, -127 silence). We keep a
//! smoothed loudness per track and announce a new speaker only when someone has been clearly
//! louder than the current one for a while, so the main view does not flap on a cough.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::TrackId;

/// Levels below this (in -dBov) count as silence: room noise, breathing.
const SPEECH_FLOOR_DBOV: f32 = -50.0;
/// A challenger must beat the current speaker by this much (dB)...
const MARGIN_DB: f32 = 6.0;
/// ...for this long.
const HOLD: Duration = Duration::from_millis(600);
/// A track not heard for this long no longer counts.
const STALE: Duration = Duration::from_millis(1500);

#[derive(Debug)]
struct Level {
    smoothed: f32,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    levels: HashMap<TrackId, Level>,
    current: Option<TrackId>,
    challenger: Option<(TrackId, Instant)>,
}

impl SpeakerDetector {
    /// One audio packet's level, in -dBov as the extension carries it (0 ..= -127).
    pub fn on_level(&mut self, track: TrackId, level_dbov: i8, now: Instant) {
        let l = f32::from(level_dbov.clamp(-127, 0));
        let e = self.levels.entry(track).or_insert(Level { smoothed: -127.0, last: now });
        // ~20 ms packets: 0.1 gives a time constant of about 200 ms.
        e.smoothed += (l - e.smoothed) * 0.1;
        e.last = now;
    }

    pub fn remove(&mut self, track: TrackId) {
        self.levels.remove(&track);
        if self.current == Some(track) {
            self.current = None;
        }
        if self.challenger.is_some_and(|(t, _)| t == track) {
            self.challenger = None;
        }
    }

    /// Call periodically; returns the new active speaker's track when it changes.
    pub fn poll(&mut self, now: Instant) -> Option<TrackId> {
        let level = |s: &Self, t: TrackId| {
            s.levels.get(&t).filter(|l| now.saturating_duration_since(l.last) < STALE).map_or(-127.0, |l| l.smoothed)
        };
        let loudest = self
            .levels
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last) < STALE && l.smoothed > SPEECH_FLOOR_DBOV)
            .max_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed))
            .map(|(t, _)| *t)?;
        if Some(loudest) == self.current {
            self.challenger = None;
            return None;
        }
        let beats = match self.current {
            None => true,
            Some(cur) => level(self, loudest) > level(self, cur) + MARGIN_DB,
        };
        if !beats {
            self.challenger = None;
            return None;
        }
        match self.challenger {
            Some((t, since)) if t == loudest => {
                if self.current.is_none() || now.saturating_duration_since(since) >= HOLD {
                    self.current = Some(loudest);
                    self.challenger = None;
                    return Some(loudest);
                }
            }
            _ => {
                self.challenger = Some((loudest, now));
                if self.current.is_none() {
                    self.current = Some(loudest);
                    self.challenger = None;
                    return Some(loudest);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut SpeakerDetector, track: TrackId, level: i8, from: Instant, ms: u64) -> Instant {
        let mut t = from;
        for _ in 0..ms / 20 {
            d.on_level(track, level, t);
            t += Duration::from_millis(20);
        }
        t
    }

    #[test]
    fn first_speaker_is_announced_and_silence_is_not() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::default();
        let t = feed(&mut d, 1, -90, t0, 1000);
        assert_eq!(d.poll(t), None);
        let t = feed(&mut d, 2, -20, t, 400);
        assert_eq!(d.poll(t), Some(2));
        assert_eq!(d.poll(t), None);
    }

    #[test]
    fn switch_needs_margin_and_hold() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::default();
        let t = feed(&mut d, 1, -20, t0, 500);
        assert_eq!(d.poll(t), Some(1));
        // Track 2 only slightly louder: no switch.
        let mut t = t;
        for _ in 0..50 {
            d.on_level(1, -22, t);
            d.on_level(2, -19, t);
            t += Duration::from_millis(20);
            assert_eq!(d.poll(t), None);
        }
        // Track 2 much louder: switch only after the hold time.
        let start = t;
        let mut switched_at = None;
        for _ in 0..100 {
            d.on_level(1, -45, t);
            d.on_level(2, -10, t);
            t += Duration::from_millis(20);
            if d.poll(t) == Some(2) {
                switched_at = Some(t);
                break;
            }
        }
        let after = switched_at.expect("switched").duration_since(start);
        assert!(after >= HOLD, "switched after {after:?}");
        assert!(after < Duration::from_millis(1500), "switched after {after:?}");
    }

    #[test]
    fn stale_and_removed_tracks_drop_out() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::default();
        let t = feed(&mut d, 1, -20, t0, 400);
        assert_eq!(d.poll(t), Some(1));
        d.remove(1);
        let t = feed(&mut d, 2, -25, t, 400);
        assert_eq!(d.poll(t), Some(2));
        assert_eq!(d.poll(t + Duration::from_secs(5)), None);
    }
}
