//! Health of one cascade link, sans-IO: the caller says when something was heard, when the
//! connection was lost, and what time it is.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Heartbeats go every half second; a link silent this long (four missed) is down. With the
/// tree's 200-ms tick a silent failure shows within 2.2 s of the last thing heard, inside the
/// 3 s we promise, and one late heartbeat on a busy link does not flap it.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
pub const DOWN_AFTER: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Never connected yet (or dialling after a restart).
    Connecting,
    Up,
    Down,
}

#[derive(Debug, Clone)]
pub struct LinkHealth {
    state: LinkState,
    last_heard: Option<Instant>,
    rtt: Option<Duration>,
    /// How many times the link went down (shown, and in the audit log).
    downs: u64,
}

impl Default for LinkHealth {
    fn default() -> Self {
        Self { state: LinkState::Connecting, last_heard: None, rtt: None, downs: 0 }
    }
}

impl LinkHealth {
    pub fn state(&self) -> LinkState {
        self.state
    }

    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    pub fn downs(&self) -> u64 {
        self.downs
    }

    pub fn heard_ago(&self, now: Instant) -> Option<Duration> {
        self.last_heard.map(|t| now.saturating_duration_since(t))
    }

    /// Something arrived on the link. Returns true if the link came up.
    pub fn heard(&mut self, now: Instant) -> bool {
        self.last_heard = Some(now);
        let came_up = self.state != LinkState::Up;
        self.state = LinkState::Up;
        came_up
    }

    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = Some(rtt);
    }

    /// The connection closed or failed. Returns true if the link was up.
    pub fn lost(&mut self) -> bool {
        let was_up = self.state == LinkState::Up;
        if was_up {
            self.downs += 1;
        }
        self.state = LinkState::Down;
        was_up
    }

    /// Time passes: an up link silent for `DOWN_AFTER` goes down. Returns true if it did.
    pub fn tick(&mut self, now: Instant) -> bool {
        let silent = self.heard_ago(now).is_none_or(|d| d >= DOWN_AFTER);
        if self.state == LinkState::Up && silent {
            return self.lost();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_takes_a_link_down_and_a_message_brings_it_back() {
        let t0 = Instant::now();
        let mut h = LinkHealth::default();
        assert_eq!(h.state(), LinkState::Connecting);
        assert!(!h.tick(t0 + Duration::from_secs(10)), "a link never up does not go down");
        assert!(h.heard(t0));
        assert!(!h.heard(t0 + HEARTBEAT));
        assert!(!h.tick(t0 + HEARTBEAT + DOWN_AFTER - Duration::from_millis(1)));
        assert_eq!(h.state(), LinkState::Up);
        assert!(h.tick(t0 + HEARTBEAT + DOWN_AFTER));
        assert_eq!(h.state(), LinkState::Down);
        assert_eq!(h.downs(), 1);
        assert!(!h.tick(t0 + Duration::from_secs(60)), "down stays down, counted once");
        assert_eq!(h.downs(), 1);
        assert!(h.heard(t0 + Duration::from_secs(61)));
        assert_eq!(h.state(), LinkState::Up);
    }

    #[test]
    fn a_closed_connection_is_down_at_once() {
        let t0 = Instant::now();
        let mut h = LinkHealth::default();
        h.heard(t0);
        assert!(h.lost());
        assert_eq!(h.state(), LinkState::Down);
        assert!(!h.lost(), "already down");
        assert_eq!(h.downs(), 1);
    }
}
