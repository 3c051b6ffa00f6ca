//! Codec knowledge the forwarder needs without decoding anything: which codec a payload type
//! carries and whether a packet starts a keyframe (a point where a new receiver can begin).

/// Video codecs we forward. Audio never needs keyframe detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    H265,
    Av1,
}

/// Does this RTP payload begin a keyframe? Conservative: `false` when unsure, so a receiver
/// waiting for a keyframe never starts on a delta frame it cannot decode.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::Vp9 => vp9_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
        VideoCodec::H265 => h265_keyframe(payload),
        VideoCodec::Av1 => av1_keyframe(payload),
    }
}

/// RFC 7741 §4.2: payload descriptor, then the VP8 frame header whose P bit is 0 on keyframes.
fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    matches!(p.get(i), Some(h) if h & 0x01 == 0)
}

/// RFC 9628 §4.2: a keyframe is a frame that is not inter-predicted (P=0), starting (B=1) in the
/// lowest spatial layer.
fn vp9_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let has_pid = b0 & 0x80 != 0;
    let inter = b0 & 0x40 != 0;
    let has_layers = b0 & 0x20 != 0;
    let begin = b0 & 0x08 != 0;
    if inter || !begin {
        return false;
    }
    if !has_layers {
        return true;
    }
    let mut i = 1;
    if has_pid {
        let Some(&pid) = p.get(i) else { return false };
        i += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    let Some(&layers) = p.get(i) else {
        return false;
    };
    let spatial_id = (layers >> 1) & 0x07;
    spatial_id == 0
}

/// RFC 6184: see `crate::h264`.
fn h264_keyframe(p: &[u8]) -> bool {
    crate::h264::starts_keyframe(p)
}

/// RFC 7798: IRAP pictures (types 16–21) or parameter sets (32–34), alone, aggregated (48) or
/// at the start of a fragment (49).
fn h265_keyframe(p: &[u8]) -> bool {
    if p.len() < 3 {
        return false;
    }
    let is_key = |t: u8| (16..=21).contains(&t) || (32..=34).contains(&t);
    match (p[0] >> 1) & 0x3f {
        48 => {
            let mut i = 2;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if is_key((p[i + 2] >> 1) & 0x3f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        49 => p[2] & 0x80 != 0 && is_key(p[2] & 0x3f),
        t => is_key(t),
    }
}

/// AV1 RTP spec §4.4: the N bit of the aggregation header marks the first packet of a coded
/// video sequence, which begins with a keyframe.
fn av1_keyframe(p: &[u8]) -> bool {
    matches!(p.first(), Some(b) if b & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_and_delta() {
        // X=1,S=1,PID=0; I=1 with 15-bit picture id; frame header P=0.
        assert!(vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00]));
        // Same with P=1 (delta frame).
        assert!(!vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x11, 0x02, 0x00]));
        // Not the start of a partition.
        assert!(!vp8_keyframe(&[0x80, 0x80, 0x81, 0x23, 0x10]));
        // Minimal descriptor without extension.
        assert!(vp8_keyframe(&[0x10, 0x9c]));
        assert!(!vp8_keyframe(&[]));
        assert!(!vp8_keyframe(&[0x90, 0x80]));
    }

    #[test]
    fn vp9_keyframe_layers() {
        // I=1 (2-byte pid), L=1, B=1, P=0; layer byte SID=0.
        assert!(vp9_keyframe(&[0xA8, 0x80, 0x01, 0x00, 0x00]));
        // SID=1: not the base spatial layer.
        assert!(!vp9_keyframe(&[0xA8, 0x80, 0x01, 0x02, 0x00]));
        // P=1: inter predicted.
        assert!(!vp9_keyframe(&[0xE8, 0x80, 0x01, 0x00, 0x00]));
        // No layer info, B=1, P=0.
        assert!(vp9_keyframe(&[0x08]));
    }

    #[test]
    fn h264_nal_forms() {
        assert!(h264_keyframe(&[0x65, 0x88])); // IDR
        assert!(!h264_keyframe(&[0x41, 0x9a])); // non-IDR slice
        assert!(h264_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68])); // STAP-A SPS
        assert!(h264_keyframe(&[0x7c, 0x85, 0x00])); // FU-A start of IDR
        assert!(!h264_keyframe(&[0x7c, 0x05, 0x00])); // FU-A middle of IDR
        assert!(!h264_keyframe(&[0x78, 0x00])); // truncated STAP-A
    }

    #[test]
    fn h265_and_av1() {
        assert!(h265_keyframe(&[19 << 1, 0x01, 0x00])); // IDR_W_RADL
        assert!(!h265_keyframe(&[1 << 1, 0x01, 0x00])); // TRAIL_R
        assert!(h265_keyframe(&[49 << 1, 0x01, 0x80 | 19])); // FU start of IDR
        assert!(av1_keyframe(&[0x08]));
        assert!(!av1_keyframe(&[0x10]));
    }

    #[test]
    fn dispatch_never_panics_on_garbage() {
        for codec in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264, VideoCodec::H265, VideoCodec::Av1] {
            for len in 0..8 {
                for fill in [0x00u8, 0xff, 0x7c, 0x78, 0x90] {
                    let _ = starts_keyframe(codec, &vec![fill; len]);
                }
            }
        }
    }
}
