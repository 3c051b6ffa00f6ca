//! H.264 for the load tool: the Annex B byte stream OpenH264 writes, cut into NAL units. What
//! a receiver reads from RTP payloads (keyframes, the size an SPS announces) is the SFU's own
//! reader (`sfu::h264`).

pub use sfu::h264::{inspect, sps_resolution, PayloadInfo, NAL_IDR};

/// The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01).
pub fn annex_b_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // Trim the start code (and the extra zero of a four-byte one) off the unit before.
            let mut e = s - 3;
            while e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).filter(|(s, e)| e > s).map(move |(s, e)| &data[s..e])
}

pub fn annex_b_has_idr(data: &[u8]) -> bool {
    annex_b_units(data).any(|u| u[0] & 0x1f == NAL_IDR)
}
