//! What a video packet says about its layer, read from the codec's payload descriptor:
//! spatial and temporal ids, switching points, frame boundaries, picture ids. Simulcast
//! streams are told apart by the worker (RID → spatial index); SVC layers by the descriptor.

/// Layer facts of one packet. For simulcast, `spatial` is the stream's index (lowest first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// First packet of a keyframe: a receiver may start (or switch streams) here.
    pub keyframe: bool,
    pub spatial: u8,
    pub temporal: u8,
    /// A receiver may move up to this packet's temporal layer here (VP8 Y bit, VP9 U bit).
    pub switch_up: bool,
    /// First packet of a (layer) frame.
    pub frame_start: bool,
    /// Last packet of a (layer) frame (VP9 E bit); VP8 and others use the RTP marker.
    pub frame_end: bool,
    /// VP8 15-bit picture id and TL0PICIDX, when present.
    pub picture_id: Option<u16>,
    pub tl0: Option<u8>,
    /// From a Dependency Descriptor: bit T set when a receiver may move up to temporal layer
    /// T here (this frame is a Switch for that decode target). Overrides `switch_up`.
    pub switch_mask: Option<u8>,
    /// Spatial layers whose receivers need this frame (bit S), when the stream says: a lower
    /// layer's delta frame in a KEY mode is not needed above it. `None`: every layer at or
    /// above its own.
    pub needed_by: Option<u8>,
}

impl FrameInfo {
    /// The temporal layer a receiver at `current`, aiming for `want`, follows from this frame
    /// (taken at a frame start): down at once, up where the frame allows it.
    pub fn temporal_after(&self, current: u8, want: u8) -> u8 {
        let raised = match self.switch_mask {
            Some(mask) => (current.saturating_add(1)..=want.min(7)).rev().find(|t| mask & (1 << t) != 0),
            None => (self.temporal > current && self.temporal <= want && self.switch_up).then_some(self.temporal),
        };
        raised.unwrap_or(current).min(want)
    }

    /// A single-layer packet (audio, or codecs we do not parse for layers).
    pub fn plain(keyframe: bool) -> Self {
        Self { keyframe, switch_up: true, frame_start: true, ..Default::default() }
    }
}

/// RFC 7741 §4.2.
pub fn parse_vp8(p: &[u8]) -> Option<FrameInfo> {
    let b0 = *p.first()?;
    let mut info = FrameInfo { frame_start: b0 & 0x10 != 0 && b0 & 0x07 == 0, ..Default::default() };
    let mut i = 1;
    let mut has_tid = false;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let m = *p.get(i)?;
            if m & 0x80 != 0 {
                info.picture_id = Some(u16::from_be_bytes([m & 0x7f, *p.get(i + 1)?]));
                i += 2;
            } else {
                // A 7-bit picture id is widened; the rewriter keeps its own 15-bit space.
                info.picture_id = Some(u16::from(m));
                i += 1;
            }
        }
        if x & 0x40 != 0 {
            info.tl0 = Some(*p.get(i)?);
            i += 1;
        }
        if x & 0x30 != 0 {
            let t = *p.get(i)?;
            i += 1;
            if x & 0x20 != 0 {
                has_tid = true;
                info.temporal = t >> 6;
                info.switch_up = t & 0x20 != 0;
            }
        }
    }
    if !has_tid {
        info.switch_up = true;
    }
    if info.frame_start {
        // The VP8 frame header's P bit: 0 on keyframes.
        info.keyframe = p.get(i).is_some_and(|h| h & 0x01 == 0);
    }
    if info.keyframe {
        info.switch_up = true;
    }
    Some(info)
}

/// The picture size of each spatial layer from VP9's scalability structure (RFC 9628 §4.2.1),
/// which the first packet of a keyframe carries (V bit) when the sender says. Index = spatial id.
pub fn vp9_layer_sizes(p: &[u8]) -> Option<Vec<(u16, u16)>> {
    let b0 = *p.first()?;
    if b0 & 0x02 == 0 {
        return None;
    }
    let flexible = b0 & 0x10 != 0;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
    }
    if b0 & 0x20 != 0 {
        i += if flexible { 1 } else { 2 };
    }
    if flexible && b0 & 0x40 != 0 {
        // Up to three reference differences, each byte's N bit says another follows.
        for _ in 0..3 {
            let r = *p.get(i)?;
            i += 1;
            if r & 0x01 == 0 {
                break;
            }
        }
    }
    let v = *p.get(i)?;
    i += 1;
    let layers = usize::from(v >> 5) + 1;
    if v & 0x10 == 0 {
        return None;
    }
    let mut sizes = Vec::with_capacity(layers);
    for _ in 0..layers {
        let b = p.get(i..i + 4)?;
        sizes.push((u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]])));
        i += 4;
    }
    Some(sizes)
}

/// VP9's prediction flags (RFC 9628 §4.2): (P: predicted from an earlier picture, D: predicted
/// from the spatial layer below in the same picture). `None` without layer indices.
pub fn vp9_prediction(p: &[u8]) -> Option<(bool, bool)> {
    let b0 = *p.first()?;
    if b0 & 0x20 == 0 {
        return None;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
    }
    let l = *p.get(i)?;
    Some((b0 & 0x40 != 0, l & 0x01 != 0))
}

/// RFC 9628 §4.2 (non-flexible and flexible modes).
pub fn parse_vp9(p: &[u8]) -> Option<FrameInfo> {
    let b0 = *p.first()?;
    let has_pid = b0 & 0x80 != 0;
    let inter = b0 & 0x40 != 0;
    let has_layers = b0 & 0x20 != 0;
    let begin = b0 & 0x08 != 0;
    let end = b0 & 0x04 != 0;
    let mut info = FrameInfo { frame_start: begin, frame_end: end, switch_up: true, ..Default::default() };
    let mut i = 1;
    if has_pid {
        let m = *p.get(i)?;
        i += if m & 0x80 != 0 { 2 } else { 1 };
        p.get(i - 1)?;
    }
    if has_layers {
        let l = *p.get(i)?;
        info.temporal = l >> 5;
        info.switch_up = l & 0x10 != 0;
        info.spatial = (l >> 1) & 0x07;
    }
    info.keyframe = !inter && begin && info.spatial == 0;
    if info.keyframe {
        info.switch_up = true;
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp9_scalability_structure_sizes() {
        // I (15-bit pid), L, B, V; non-flexible: layer byte + TL0PICIDX; SS: N_S=2, Y=1, G=0.
        let mut p = vec![0xA0 | 0x08 | 0x02, 0x80, 0x05, 0x00, 0x07, 0b0101_0000];
        for (w, h) in [(160u16, 90u16), (320, 180), (640, 360)] {
            p.extend_from_slice(&w.to_be_bytes());
            p.extend_from_slice(&h.to_be_bytes());
        }
        assert_eq!(vp9_layer_sizes(&p), Some(vec![(160, 90), (320, 180), (640, 360)]));
        // Cut short, or without the V bit: nothing.
        assert_eq!(vp9_layer_sizes(&p[..12]), None);
        let mut no_v = p.clone();
        no_v[0] &= !0x02;
        assert_eq!(vp9_layer_sizes(&no_v), None);
        // Flexible mode with P: two reference bytes (N set on the first) before the SS.
        let mut flex = vec![0x80 | 0x40 | 0x20 | 0x10 | 0x08 | 0x02, 0x05, 0x00, 0x03, 0x04, 0b0011_0000];
        flex.extend_from_slice(&[0, 200, 0, 100, 1, 144, 0, 200]);
        assert_eq!(vp9_layer_sizes(&flex), Some(vec![(200, 100), (400, 200)]));
    }

    #[test]
    fn vp8_temporal_layers_and_picture_ids() {
        // X, I (15-bit pid 0x0123), L (tl0 7), T (tid 2, Y=1), delta frame.
        let p = [0x90, 0xe0, 0x81, 0x23, 0x07, 0xa0, 0x01];
        let info = parse_vp8(&p).unwrap();
        assert_eq!(info.temporal, 2);
        assert!(info.switch_up);
        assert!(!info.keyframe);
        assert!(info.frame_start);
        assert_eq!(info.picture_id, Some(0x0123));
        assert_eq!(info.tl0, Some(7));
        // Same with Y=0, continuation packet (S=0).
        let p = [0x80, 0xe0, 0x81, 0x23, 0x07, 0x80, 0x01];
        let info = parse_vp8(&p).unwrap();
        assert!(!info.switch_up && !info.frame_start && !info.keyframe);
        // Keyframe, TID 0.
        let p = [0x90, 0xe0, 0x80, 0x01, 0x08, 0x00, 0x00];
        let info = parse_vp8(&p).unwrap();
        assert!(info.keyframe && info.switch_up && info.temporal == 0);
        // Truncated descriptors are refused, not misread.
        assert_eq!(parse_vp8(&[0x90, 0xe0, 0x81]), None);
        assert_eq!(parse_vp8(&[]), None);
    }

    #[test]
    fn vp9_layers() {
        // I (7-bit pid), L, B, E: layer byte TID=1 U=1 SID=2 D=1; non-flexible: tl0 byte.
        let p = [0xac, 0x05, (1 << 5) | 0x10 | (2 << 1) | 1, 0x09];
        let info = parse_vp9(&p).unwrap();
        assert_eq!((info.spatial, info.temporal), (2, 1));
        assert!(info.switch_up && info.frame_start && info.frame_end && !info.keyframe);
        // Keyframe: P=0, B=1, SID=0.
        let p = [0xa8, 0x05, 0x00, 0x00];
        assert!(parse_vp9(&p).unwrap().keyframe);
        assert_eq!(parse_vp9(&[0xa8]), None);
    }
}
