//! RFC 2198 redundant audio (RED), as browsers send Opus with it: a RED payload carries the
//! current frame plus copies of earlier ones, so a receiver survives losing the packets that
//! carried those. We pass RED through to receivers that negotiated it, take the primary frame
//! out for those that did not, and can pack more history for receivers on lossy links.

use std::ops::Range;

/// One block of a RED payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedBlock {
    pub pt: u8,
    /// How much earlier than the packet's timestamp this block's frame is (0 for the primary).
    pub ts_offset: u16,
    pub range: Range<usize>,
}

/// The most blocks we read or write: browsers send 1–2; at 80 % loss a frame needs ~10 copies
/// for a 90 % chance that one arrives.
pub const MAX_BLOCKS: usize = 12;

/// Parse a RED payload. Returns the blocks, oldest first, primary last; `None` if malformed.
pub fn parse(payload: &[u8]) -> Option<([Option<RedBlock>; MAX_BLOCKS], usize)> {
    let mut blocks: [Option<RedBlock>; MAX_BLOCKS] = Default::default();
    let mut n = 0;
    let mut i = 0;
    let mut lens = [0usize; MAX_BLOCKS];
    // Headers: 4 bytes each (F=1), then a 1-byte header for the primary (F=0).
    loop {
        let h = *payload.get(i)?;
        if h & 0x80 == 0 {
            if n >= MAX_BLOCKS {
                return None;
            }
            blocks[n] = Some(RedBlock { pt: h & 0x7f, ts_offset: 0, range: 0..0 });
            i += 1;
            n += 1;
            break;
        }
        if n + 1 >= MAX_BLOCKS {
            return None;
        }
        let b = payload.get(i..i + 4)?;
        let ts_offset = (u16::from(b[1]) << 6) | u16::from(b[2] >> 2);
        lens[n] = (usize::from(b[2] & 0x03) << 8) | usize::from(b[3]);
        blocks[n] = Some(RedBlock { pt: h & 0x7f, ts_offset, range: 0..0 });
        i += 4;
        n += 1;
    }
    for (k, block) in blocks.iter_mut().take(n).enumerate() {
        let b = block.as_mut()?;
        let len = if k == n - 1 { payload.len().checked_sub(i)? } else { lens[k] };
        if i + len > payload.len() {
            return None;
        }
        b.range = i..i + len;
        i += len;
    }
    Some((blocks, n))
}

/// The primary (newest) frame of a RED payload: what a receiver without RED gets.
pub fn primary(payload: &[u8]) -> Option<(u8, Range<usize>)> {
    let (blocks, n) = parse(payload)?;
    let b = blocks[n - 1].clone()?;
    Some((b.pt, b.range))
}

/// `payload` with every block's payload type set to `pt`, for a receiver that numbered Opus
/// differently from the publisher (the blocks name the codec by PT); `None` when malformed.
pub fn with_pt(payload: &[u8], pt: u8) -> Option<Vec<u8>> {
    let (_, n) = parse(payload)?;
    let mut out = payload.to_vec();
    for k in 0..n - 1 {
        out[4 * k] = 0x80 | (pt & 0x7f);
    }
    out[4 * (n - 1)] = pt & 0x7f;
    Some(out)
}

/// Pack `primary` with `history` (oldest first: timestamp offset and frame) into a RED payload.
pub fn pack(pt: u8, primary: &[u8], history: &[(u16, &[u8])], out: &mut Vec<u8>) {
    out.clear();
    let history = &history[history.len().saturating_sub(MAX_BLOCKS - 1)..];
    for (offset, frame) in history {
        // 14-bit offset and 10-bit length: frames that do not fit are left out.
        if *offset >= 1 << 14 || frame.len() >= 1 << 10 {
            continue;
        }
        out.push(0x80 | pt);
        out.push((offset >> 6) as u8);
        out.push((((offset & 0x3f) << 2) as u8) | (frame.len() >> 8) as u8);
        out.push(frame.len() as u8);
    }
    out.push(pt);
    for (offset, frame) in history {
        if *offset < 1 << 14 && frame.len() < 1 << 10 {
            out.extend_from_slice(frame);
        }
    }
    out.extend_from_slice(primary);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_fits_a_third_of_the_estimate() {
        assert_eq!(depth_within(11, None), 11, "no estimate: loss alone decides");
        assert_eq!(depth_within(11, Some(3_000_000)), 11);
        assert_eq!(depth_within(11, Some(1_000_000)), 9);
        assert_eq!(depth_within(11, Some(300_000)), 2);
        assert_eq!(depth_within(11, Some(150_000)), 0);
        assert_eq!(depth_within(3, Some(1_000_000)), 3);
    }

    #[test]
    fn blocks_share_what_is_spare() {
        assert_eq!(blocks_in(0, 1), 0);
        assert_eq!(blocks_in(70_000, 1), 2);
        assert_eq!(blocks_in(70_000, 2), 1);
        assert_eq!(blocks_in(70_000, 0), 2, "no audio track: no division by zero");
    }

    #[test]
    fn pack_and_parse_at_every_depth() {
        let frames: Vec<Vec<u8>> = (0..MAX_BLOCKS).map(|i| vec![i as u8; 20 + i * 3]).collect();
        let mut out = Vec::new();
        for depth in 0..MAX_BLOCKS {
            let history: Vec<(u16, &[u8])> =
                (0..depth).map(|k| (((depth - k) * 960) as u16, frames[k].as_slice())).collect();
            let primary_frame = &frames[depth];
            pack(111, primary_frame, &history, &mut out);
            let (blocks, n) = parse(&out).unwrap();
            assert_eq!(n, depth + 1);
            for k in 0..depth {
                let b = blocks[k].clone().unwrap();
                assert_eq!(&out[b.range.clone()], frames[k].as_slice());
                assert_eq!(b.ts_offset as usize, (depth - k) * 960);
                assert_eq!(b.pt, 111);
            }
            let (pt, range) = primary(&out).unwrap();
            assert_eq!((pt, &out[range]), (111, primary_frame.as_slice()));
        }
    }

    #[test]
    fn browser_style_payload() {
        // Chrome: one redundant block (offset 960, 3 bytes) + primary.
        let p = [0x80 | 111, 0x0f, 0x00, 0x03, 111, 9, 9, 9, 1, 2, 3, 4];
        let (pt, range) = primary(&p).unwrap();
        assert_eq!(pt, 111);
        assert_eq!(&p[range], &[1, 2, 3, 4]);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert_eq!(primary(&[]), None);
        // Header says 200 bytes of redundancy, payload has 3.
        assert_eq!(primary(&[0x80 | 111, 0x0f, 0x00, 200, 111, 1, 2, 3]), None);
        // Truncated header.
        assert_eq!(primary(&[0x80 | 111, 0x0f]), None);
        // Too many blocks.
        let mut many = [0xef, 0, 0, 0].repeat(MAX_BLOCKS);
        many.push(111);
        assert_eq!(primary(&many), None);
        // Only a primary header: empty primary is fine.
        assert_eq!(primary(&[111]).map(|(p, r)| (p, r.len())), Some((111, 0)));
    }
}

/// How many earlier frames to repeat for a receiver that loses `loss` (0..1) of its packets:
/// enough that a frame is lost only if all its copies are, with probability ≤ 1 %. Audio
/// frames are small, so the margin is cheap, and it absorbs a loss figure that runs low.
pub fn depth_for_loss(loss: f32) -> usize {
    const TARGET: f32 = 0.01;
    // NaN (no data) and negligible loss both mean: no redundancy.
    if loss.is_nan() || loss <= 0.01 {
        return 0;
    }
    let loss = loss.min(0.95);
    let copies = (TARGET.ln() / loss.ln()).ceil() as usize;
    copies.saturating_sub(1).clamp(1, MAX_BLOCKS - 1)
}

/// What one Opus frame per 20 ms costs on the wire as an extra RED block (a 32 kbps voice
/// stream; the block header is 4 bytes).
pub const FRAME_BPS: u64 = 32_000;

/// `depth` limited to what a receiver's bandwidth estimate affords: all copies of the audio
/// within a third of it. Loss on a congested link is the link saying "less"; answering it with
/// eleven copies of every frame (80 % loss) multiplies the audio rate by twelve and keeps the
/// link congested (measured: a 300 kbps link stayed at 70 % loss with video already paused).
pub fn depth_within(depth: usize, estimate_bps: Option<u64>) -> usize {
    let Some(estimate) = estimate_bps else { return depth };
    let copies = (estimate / 3 / FRAME_BPS) as usize;
    depth.min(copies.saturating_sub(1))
}

/// How many RED blocks per audio track fit in `spare_bps` shared by `tracks` audio tracks.
pub fn blocks_in(spare_bps: u64, tracks: usize) -> usize {
    (spare_bps / FRAME_BPS / tracks.max(1) as u64) as usize
}

/// The last frames of one audio track, to repeat in RED payloads for lossy receivers.
#[derive(Debug, Default)]
pub struct RedHistory {
    /// (RTP timestamp, frame), oldest first.
    frames: std::collections::VecDeque<(u32, std::sync::Arc<[u8]>)>,
}

impl RedHistory {
    pub fn push(&mut self, ts: u32, frame: std::sync::Arc<[u8]>) {
        if self.frames.len() == MAX_BLOCKS {
            self.frames.pop_front();
        }
        self.frames.push_back((ts, frame));
    }

    /// RED payload: the frame at `ts` (the newest pushed) with up to `depth` earlier ones.
    pub fn pack(&self, pt: u8, depth: usize, out: &mut Vec<u8>) -> bool {
        let Some((ts, primary)) = self.frames.back() else { return false };
        let n = self.frames.len();
        let earlier = self.frames.iter().take(n - 1).skip((n - 1).saturating_sub(depth));
        let history: Vec<(u16, &[u8])> =
            earlier.filter_map(|(t, f)| u16::try_from(ts.wrapping_sub(*t)).ok().map(|o| (o, &f[..]))).collect();
        pack(pt, primary, &history, out);
        true
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn block_payload_types_are_renumbered_and_nothing_else() {
        let frames = [vec![1u8; 30], vec![2u8; 31]];
        let mut red = Vec::new();
        pack(111, &[3u8; 32], &[(960, &frames[0]), (1920, &frames[1])], &mut red);
        let out = with_pt(&red, 109).unwrap();
        let (blocks, n) = parse(&out).unwrap();
        assert_eq!(n, 3);
        assert!(blocks.iter().take(n).all(|b| b.as_ref().unwrap().pt == 109));
        let (orig, _) = parse(&red).unwrap();
        for k in 0..n {
            let (a, b) = (orig[k].clone().unwrap(), blocks[k].clone().unwrap());
            assert_eq!((a.ts_offset, &red[a.range]), (b.ts_offset, &out[b.range]));
        }
        assert_eq!(with_pt(&[0x80 | 111, 0], 109), None, "malformed");
    }

    #[test]
    fn depth_grows_with_loss() {
        assert_eq!(depth_for_loss(0.0), 0);
        assert_eq!(depth_for_loss(f32::NAN), 0);
        assert_eq!(depth_for_loss(0.05), 1);
        assert_eq!(depth_for_loss(0.2), 2);
        assert_eq!(depth_for_loss(0.3), 3);
        assert_eq!(depth_for_loss(0.5), 6);
        // 80 %: 21 copies would be needed; capped at what a payload carries.
        assert_eq!(depth_for_loss(0.8), MAX_BLOCKS - 1);
        assert!(depth_for_loss(1.0) < MAX_BLOCKS);
    }

    #[test]
    fn history_packs_the_newest_frames() {
        let mut h = RedHistory::default();
        for i in 0..20u32 {
            h.push(i * 960, Arc::from(vec![i as u8; 10]));
        }
        let mut out = Vec::new();
        assert!(h.pack(111, 3, &mut out));
        let (blocks, n) = parse(&out).unwrap();
        assert_eq!(n, 4);
        let frames: Vec<u8> = (0..n).map(|k| out[blocks[k].clone().unwrap().range][0]).collect();
        assert_eq!(frames, vec![16, 17, 18, 19]);
        assert_eq!(blocks[0].clone().unwrap().ts_offset, 3 * 960);
    }
}
