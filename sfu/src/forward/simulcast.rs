//! Simulcast: each spatial layer is its own stream (own SSRC, sequence numbers, timestamps).
//! A subscriber follows one stream; it moves to another only at that stream's keyframe.
//! Within the stream, temporal layers above the target are dropped; moving up waits for a
//! switching point. A single stream (no simulcast) is the one-stream case of this.

use super::{FrameInfo, Selector, Target, Verdict};

#[derive(Debug, Clone, Default)]
pub struct SimulcastSelector {
    /// (stream, temporal layer) being forwarded.
    current: Option<(u8, u8)>,
}

impl Selector for SimulcastSelector {
    fn select(&mut self, info: &FrameInfo, want: Target) -> Verdict {
        let stream = info.spatial;
        match self.current {
            None => {
                if stream == want.spatial && info.keyframe {
                    self.current = Some((stream, want.temporal));
                    return Verdict::Forward { switched: true, marker: None };
                }
                Verdict::Ignore
            }
            Some((cur, _)) if stream != cur => {
                if stream == want.spatial && info.keyframe {
                    self.current = Some((stream, want.temporal));
                    return Verdict::Forward { switched: true, marker: None };
                }
                Verdict::Ignore
            }
            Some((cur, mut temporal)) => {
                if info.frame_start {
                    temporal = info.temporal_after(temporal, want.temporal);
                    self.current = Some((cur, temporal));
                }
                if info.temporal <= temporal {
                    Verdict::Forward { switched: false, marker: None }
                } else {
                    Verdict::Drop
                }
            }
        }
    }

    fn needs_keyframe(&self, want: Target) -> Option<u8> {
        match self.current {
            Some((cur, _)) if cur == want.spatial => None,
            _ => Some(want.spatial),
        }
    }

    fn current(&self) -> Option<Target> {
        self.current.map(|(spatial, temporal)| Target { spatial, temporal })
    }

    fn reset(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(stream: u8, temporal: u8, keyframe: bool, start: bool, switch_up: bool) -> FrameInfo {
        FrameInfo { keyframe, spatial: stream, temporal, switch_up, frame_start: start, ..Default::default() }
    }

    const ALL: Target = Target { spatial: 2, temporal: 2 };

    #[test]
    fn starts_on_the_wanted_streams_keyframe_only() {
        let mut s = SimulcastSelector::default();
        assert_eq!(s.select(&pkt(2, 0, false, true, true), ALL), Verdict::Ignore);
        assert_eq!(s.select(&pkt(1, 0, true, true, true), ALL), Verdict::Ignore);
        assert_eq!(s.needs_keyframe(ALL), Some(2));
        assert_eq!(s.select(&pkt(2, 0, true, true, true), ALL), Verdict::Forward { switched: true, marker: None });
        assert_eq!(s.needs_keyframe(ALL), None);
        assert_eq!(s.select(&pkt(2, 2, false, true, false), ALL), Verdict::Forward { switched: false, marker: None });
    }

    #[test]
    fn switches_streams_at_keyframes_and_never_leaks_others() {
        let mut s = SimulcastSelector::default();
        s.select(&pkt(2, 0, true, true, true), ALL);
        let low = Target { spatial: 0, temporal: 2 };
        // Still on stream 2 until stream 0 has a keyframe; stream 0's deltas are ignored.
        assert_eq!(s.select(&pkt(2, 0, false, true, true), low), Verdict::Forward { switched: false, marker: None });
        assert_eq!(s.select(&pkt(0, 0, false, true, true), low), Verdict::Ignore);
        assert_eq!(s.needs_keyframe(low), Some(0));
        assert_eq!(s.select(&pkt(0, 0, true, true, true), low), Verdict::Forward { switched: true, marker: None });
        assert_eq!(s.select(&pkt(2, 0, true, true, true), low), Verdict::Ignore);
        assert_eq!(s.current(), Some(Target { spatial: 0, temporal: 2 }));
    }

    #[test]
    fn temporal_down_at_once_up_at_switch_points() {
        let mut s = SimulcastSelector::default();
        s.select(&pkt(0, 0, true, true, true), Target { spatial: 0, temporal: 2 });
        let t0 = Target { spatial: 0, temporal: 0 };
        assert_eq!(s.select(&pkt(0, 2, false, true, true), t0), Verdict::Drop);
        assert_eq!(s.select(&pkt(0, 2, false, false, true), t0), Verdict::Drop);
        assert_eq!(s.select(&pkt(0, 0, false, true, false), t0), Verdict::Forward { switched: false, marker: None });
        let t2 = Target { spatial: 0, temporal: 2 };
        // Not a switching point: still dropped.
        assert_eq!(s.select(&pkt(0, 1, false, true, false), t2), Verdict::Drop);
        // Switching point for layer 1: up.
        assert_eq!(s.select(&pkt(0, 1, false, true, true), t2), Verdict::Forward { switched: false, marker: None });
        assert_eq!(s.current(), Some(Target { spatial: 0, temporal: 1 }));
    }
}
