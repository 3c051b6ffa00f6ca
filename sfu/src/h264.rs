//! Just enough of H.264 (RFC 6184 packetization, ITU-T H.264 §7.3.2.1 SPS) for a receiver to
//! tell a keyframe from a delta frame and read the frame size a keyframe announces: the
//! forwarder learns each simulcast stream's size from it (as from VP8's frame header), which
//! a tile's height and dynacast need; the load tool reads what its viewers receive with it.

pub const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// What an RTP payload starts: whether it begins an IDR picture (or carries its parameter
/// sets), and the frame size if an SPS is in it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PayloadInfo {
    pub keyframe: bool,
    pub resolution: Option<(u16, u16)>,
}

/// Whether the payload starts a keyframe: an IDR slice or an SPS, alone, aggregated (STAP-A)
/// or at the start of a fragment (FU-A). The forwarder asks this of every H.264 packet.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let mut key = false;
    each_nal(payload, |t, _| key |= t == NAL_IDR || t == NAL_SPS);
    key
}

/// `starts_keyframe`, and the size an SPS in the payload announces.
pub fn inspect(payload: &[u8]) -> PayloadInfo {
    let mut info = PayloadInfo::default();
    each_nal(payload, |t, unit| match t {
        NAL_IDR => info.keyframe = true,
        NAL_SPS => {
            info.keyframe = true;
            if let Some(rbsp) = unit.get(1..) {
                info.resolution = info.resolution.or(sps_resolution(rbsp));
            }
        }
        _ => {}
    });
    info
}

/// Each NAL unit the payload starts, by type, with its bytes (header included); a fragment's
/// start gives its type only (its bytes are not whole).
fn each_nal(payload: &[u8], mut f: impl FnMut(u8, &[u8])) {
    let Some(&first) = payload.first() else { return };
    match first & 0x1f {
        STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 2 {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(unit) = rest.get(2..2 + len) else { break };
                if let Some(&h) = unit.first() {
                    f(h & 0x1f, unit);
                }
                rest = &rest[2 + len..];
            }
        }
        FU_A => {
            // Only the fragment that starts the NAL unit says what it is.
            if let Some(&fu) = payload.get(1).filter(|fu| *fu & 0x80 != 0) {
                f(fu & 0x1f, &[]);
            }
        }
        t => f(t, payload),
    }
}

/// Exp-Golomb reader over an RBSP (emulation prevention bytes removed as it goes).
struct Bits<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u8,
    zeros: u8,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, byte: 0, bit: 0, zeros: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        if self.bit == 0 {
            // 0x000003: the 03 is emulation prevention, not data.
            if self.zeros >= 2 && self.data.get(self.byte) == Some(&3) {
                self.byte += 1;
                self.zeros = 0;
            }
            let b = *self.data.get(self.byte)?;
            self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
        }
        let b = self.data[self.byte];
        let v = (b >> (7 - self.bit)) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(v as u32)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 { k.div_ceil(2) as i32 } else { -((k / 2) as i32) })
    }
}

/// Width and height (cropped) from an SPS without its NAL header byte. None if it uses what
/// this reader does not follow (scaling matrices) or is malformed.
pub fn sps_resolution(sps: &[u8]) -> Option<(u16, u16)> {
    let mut r = Bits::new(sps);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            return None; // seq_scaling_matrix_present
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(255) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?;
    let width_mbs = r.ue()? + 1;
    let height_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?; // direct_8x8_inference
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.bit()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match chroma_format {
            0 => (1, 2 - frame_mbs_only),
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        crop_x = unit_x * (left + right);
        crop_y = unit_y * (top + bottom);
    }
    let width = (width_mbs * 16).checked_sub(crop_x)?;
    let height = ((2 - frame_mbs_only) * height_units * 16).checked_sub(crop_y)?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cropped_sps() {
        // x264 baseline SPS for 1920x1080 (68 macroblock rows, 8 lines cropped at the bottom).
        let sps = [
            0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03,
            0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
        ];
        assert_eq!(sps_resolution(&sps), Some((1920, 1080)));
    }

    #[test]
    fn keyframes_in_single_stap_and_fragmented_payloads() {
        assert!(inspect(&[0x65, 0x88, 0x80]).keyframe);
        assert!(!inspect(&[0x41, 0x9a]).keyframe);
        // FU-A: start fragment of an IDR, then a middle fragment.
        assert!(inspect(&[0x7c, 0x85, 0x00]).keyframe);
        assert!(!inspect(&[0x7c, 0x05, 0x00]).keyframe);
        // STAP-A with a one-byte PPS-ish unit and an IDR unit.
        assert!(inspect(&[0x78, 0x00, 0x01, 0x68, 0x00, 0x02, 0x65, 0x00]).keyframe);
        // Truncated and empty input never panics.
        assert_eq!(inspect(&[0x78, 0x00, 0x09, 0x68]), PayloadInfo::default());
        assert_eq!(inspect(&[]), PayloadInfo::default());
        assert_eq!(sps_resolution(&[0x42]), None);
    }
}
