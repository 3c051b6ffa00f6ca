//! Switching off simulcast layers nobody receives, at the publisher (LiveKit calls it
//! dynacast): an encoder that stops producing 720p for a room of thumbnails saves the
//! publisher's CPU and uplink. The worker asks, per published track, which layer the most
//! demanding subscriber wants; this decides when to tell the publisher. Raising is at once (a
//! subscriber is waiting); lowering waits `LOWER_AFTER` of steady lower demand, so a tile that
//! is resized back and forth does not make the encoder restart a layer each time.

use std::time::{Duration, Instant};

/// How long demand must stay lower before layers are switched off.
pub const LOWER_AFTER: Duration = Duration::from_secs(3);

/// The highest simulcast layer a publisher keeps on for one track (layer 0 always stays on,
/// so a new subscriber gets video without waiting for the publisher).
#[derive(Debug, Clone, Copy)]
pub struct PublishLayers {
    top: u8,
    lower_since: Option<Instant>,
}

impl PublishLayers {
    /// A track publishing `layers` layers, all on.
    pub fn new(layers: u8) -> Self {
        Self { top: layers.saturating_sub(1), lower_since: None }
    }

    pub fn top(&self) -> u8 {
        self.top
    }

    /// The highest layer wanted now (0 when nobody wants more, or nobody watches). Returns
    /// the new top layer when the publisher must be told.
    pub fn update(&mut self, needed: u8, now: Instant) -> Option<u8> {
        if needed > self.top {
            self.top = needed;
            self.lower_since = None;
            return Some(needed);
        }
        if needed == self.top {
            self.lower_since = None;
            return None;
        }
        let since = *self.lower_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= LOWER_AFTER {
            self.top = needed;
            self.lower_since = None;
            return Some(needed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_at_once_lower_after_steady_demand() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut p = PublishLayers::new(3);
        assert_eq!(p.top(), 2);
        assert_eq!(p.update(2, s(0)), None);
        // Only thumbnails now: not yet.
        assert_eq!(p.update(0, s(1000)), None);
        assert_eq!(p.update(0, s(3000)), None);
        assert_eq!(p.update(0, s(4000)), Some(0));
        assert_eq!(p.update(0, s(9000)), None, "told once");
        // Someone maximises a tile: at once.
        assert_eq!(p.update(2, s(9100)), Some(2));
        // A brief dip does not switch anything off.
        assert_eq!(p.update(1, s(10_000)), None);
        assert_eq!(p.update(2, s(11_000)), None);
        assert_eq!(p.update(1, s(12_000)), None);
        assert_eq!(p.update(1, s(14_999)), None);
        assert_eq!(p.update(1, s(15_000)), Some(1));
    }
}
