//! Spatial SVC in one stream (VP9 and AV1, L3T3_KEY, L1T3): packets carry spatial and temporal
//! ids. A subscriber gets the layers up to its target: spatial up only at a keyframe (in KEY
//! modes upper layers predict from lower ones only there); temporal up at switching points,
//! down at once. The last forwarded layer's end gets the RTP marker.
//!
//! When the stream says which layers need a frame (`FrameInfo::needed_by`: the AV1 Dependency
//! Descriptor, VP9 in KEY mode), lower layers' delta frames are cut for upper-layer receivers.
//! Besides the bandwidth, this is what keeps a Chromium receiver going under loss with a round
//! trip: given the base layer too, it decodes a temporal unit whose base frame is still being
//! repaired, drops that frame when it comes, and the base layer then waits for a keyframe
//! (measured, AV1 L2T3_KEY at 50 ms RTT, 10 % loss: 42 % frozen; cut: 0 %). The price: such a
//! receiver has no lower layer to fall back to, so moving down waits for a keyframe too.
//! Otherwise (every lower frame forwarded) down is at the next picture.

use super::{FrameInfo, Selector, Target, Verdict};

#[derive(Debug, Clone, Default)]
pub struct SvcSelector {
    current: Option<(u8, u8)>,
    /// Lower layers' delta frames are being cut (the stream said who needs them).
    cutting: bool,
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
            self.cutting = info.needed_by.is_some();
            if want.spatial != spatial && (info.keyframe || (!self.cutting && want.spatial < spatial)) {
                spatial = want.spatial;
            }
            temporal = info.temporal_after(temporal, want.temporal);
        }
        self.current = Some((spatial, temporal));
        let needed = info.needed_by.is_none_or(|m| m & (1 << spatial) != 0);
        if info.spatial <= spatial && info.temporal <= temporal && needed {
            let marker = (info.frame_end && info.spatial == spatial).then_some(true);
            Verdict::Forward { switched, marker }
        } else {
            Verdict::Drop
        }
    }

    fn needs_keyframe(&self, want: Target) -> Option<u8> {
        match self.current {
            Some((spatial, _)) if spatial == want.spatial || (spatial > want.spatial && !self.cutting) => None,
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

    #[test]
    fn cut_lower_layers_mean_down_waits_for_a_keyframe() {
        let mut s = SvcSelector::default();
        let low = Target { spatial: 0, temporal: 2 };
        let high = Target { spatial: 1, temporal: 2 };
        let cut = |mut f: FrameInfo, needed_by: u8| {
            f.needed_by = Some(needed_by);
            f
        };
        // Key picture: S0 needed by both layers, S1 by S1.
        assert!(matches!(s.select(&cut(pkt(0, 0, true, true, true), 0b11), high), Verdict::Forward { .. }));
        assert!(matches!(s.select(&cut(pkt(1, 0, false, true, true), 0b10), high), Verdict::Forward { .. }));
        // Delta picture: S0 is for S0 receivers only, so an S1 receiver does not get it.
        assert_eq!(s.select(&cut(pkt(0, 2, false, true, true), 0b01), high), Verdict::Drop);
        assert_eq!(
            s.select(&cut(pkt(1, 2, false, true, true), 0b10), high),
            Verdict::Forward { switched: false, marker: Some(true) }
        );
        // Asked to go down: it has no S0 history, so it stays on S1 and asks for a keyframe.
        assert_eq!(s.select(&cut(pkt(0, 1, false, true, true), 0b01), low), Verdict::Drop);
        assert!(matches!(s.select(&cut(pkt(1, 1, false, true, true), 0b10), low), Verdict::Forward { .. }));
        assert_eq!(s.needs_keyframe(low), Some(0));
        // The keyframe moves it down.
        assert!(matches!(s.select(&cut(pkt(0, 0, true, true, true), 0b11), low), Verdict::Forward { .. }));
        assert_eq!(s.select(&cut(pkt(1, 0, false, true, true), 0b10), low), Verdict::Drop);
        assert_eq!(s.needs_keyframe(low), None);
    }
}
