//! Keyframe requests from many subscribers merged into at most one per interval per track:
//! a keyframe costs the publisher several times a delta frame's bits.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct KeyframeGate {
    min_interval: Duration,
    last: Option<Instant>,
}

impl KeyframeGate {
    pub fn new(min_interval: Duration) -> Self {
        Self { min_interval, last: None }
    }

    /// True when a request may go to the publisher now; records it.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|t| now.saturating_duration_since(t) < self.min_interval) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_requests_within_interval() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::new(Duration::from_millis(300));
        assert!(g.allow(t0));
        assert!(!g.allow(t0 + Duration::from_millis(10)));
        assert!(!g.allow(t0 + Duration::from_millis(299)));
        assert!(g.allow(t0 + Duration::from_millis(300)));
        assert!(!g.allow(t0 + Duration::from_millis(301)));
    }
}
