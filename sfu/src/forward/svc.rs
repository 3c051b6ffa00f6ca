//! Spatial SVC in one stream (VP9 L3T3_KEY, L1T3): packets carry spatial and temporal ids.
//! A subscriber gets the layers up to its target: spatial up only at a keyframe (in KEY modes
//! upper layers predict from lower ones only there), down at the next picture; temporal up at
//! switching points, down at once. The last forwarded layer's end gets the RTP marker.

use super::{FrameInfo, Selector, Target, Verdict};

#[derive(Debug, Clone, Default)]
pub struct SvcSelector {
    current: Option<(u8, u8)>,
}

impl Selector for SvcSelector {
    fn select(&mut self, info: &FrameInfo, want: Target) -> Verdict {
        let mut switched = false;
        let (mut spatial, mut temporal) = match self.current {
            Some(c) => c,
            None if info.keyframe => {
                switched = true;
                (want.spatial, want.temporal)
            }
            None => return Verdict::Ignore,
        };
        // Decisions are taken at the start of a picture (its lowest spatial layer).
        if info.frame_start && info.spatial == 0 {
            if want.spatial > spatial && info.keyframe {
                spatial = want.spatial;
            }
            spatial = spatial.min(want.spatial);
            temporal = info.temporal_after(temporal, want.temporal);
        }
        self.current = Some((spatial, temporal));
        if info.spatial <= spatial && info.temporal <= temporal {
            let marker = (info.frame_end && info.spatial == spatial).then_some(true);
            Verdict::Forward { switched, marker }
        } else {
            Verdict::Drop
        }
    }

    fn needs_keyframe(&self, want: Target) -> Option<u8> {
        match self.current {
            Some((spatial, _)) if spatial >= want.spatial => None,
            _ => Some(0),
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

    fn pkt(spatial: u8, temporal: u8, keyframe: bool, start: bool, end: bool) -> FrameInfo {
        FrameInfo {
            keyframe,
            spatial,
            temporal,
            switch_up: true,
            frame_start: start,
            frame_end: end,
            ..Default::default()
        }
    }

    #[test]
    fn forwards_up_to_target_and_marks_its_end() {
        let mut s = SvcSelector::default();
        let want = Target { spatial: 1, temporal: 2 };
        assert_eq!(s.select(&pkt(0, 0, false, true, true), want), Verdict::Ignore);
        assert_eq!(s.select(&pkt(0, 0, true, true, true), want), Verdict::Forward { switched: true, marker: None });
        assert_eq!(
            s.select(&pkt(1, 0, false, true, true), want),
            Verdict::Forward { switched: false, marker: Some(true) }
        );
        assert_eq!(s.select(&pkt(2, 0, false, true, true), want), Verdict::Drop);
    }

    #[test]
    fn spatial_up_waits_for_keyframe_down_is_immediate() {
        let mut s = SvcSelector::default();
        let low = Target { spatial: 0, temporal: 2 };
        let high = Target { spatial: 2, temporal: 2 };
        s.select(&pkt(0, 0, true, true, true), low);
        // Want more: next picture is not a keyframe, stay at S0.
        s.select(&pkt(0, 0, false, true, true), high);
        assert_eq!(s.select(&pkt(1, 0, false, true, true), high), Verdict::Drop);
        assert_eq!(s.needs_keyframe(high), Some(0));
        s.select(&pkt(0, 0, true, true, true), high);
        assert_eq!(
            s.select(&pkt(2, 0, false, true, true), high),
            Verdict::Forward { switched: false, marker: Some(true) }
        );
        // Want less: the next picture drops S1 and S2 at once.
        s.select(&pkt(0, 1, false, true, true), low);
        assert_eq!(s.select(&pkt(1, 1, false, true, true), low), Verdict::Drop);
        assert_eq!(s.current(), Some(Target { spatial: 0, temporal: 2 }));
    }
}
