//! ULPFEC (RFC 5109): XOR parity packets over groups of RTP packets, the forward error
//! correction Chromium negotiates as `ulpfec` inside video `red`.
//!
//! Sans-IO. The encoder takes RTP packets exactly as the receiver will see them (header,
//! extensions, payload; libwebrtc zeroes mutable extensions such as the transport-wide sequence
//! number on both sides before XOR) and returns the FEC payload that rides in a RED block. The
//! decoder recovers one missing packet from one FEC packet and the other packets it protects;
//! run it again over the recovered packets and further FEC packets until nothing more comes
//! back.
//!
//! Wire format, one protection level (all libwebrtc sends):
//! ```text
//! FEC header (10 bytes)   |E|L|P|X|  CC   |M| PT recovery |        SN base              |
//!                         |                    TS recovery                              |
//!                         |       length recovery         |
//! level 0 header (4 or 8) |     protection length         |  mask (16 bits, or 48 if L) |
//! level 0 payload         XOR of each packet's bytes after its 12-byte fixed header
//! ```

/// Fixed RTP header length; everything after it (CSRCs, extensions, payload) is protected.
const RTP_FIXED: usize = 12;
const FEC_HEADER: usize = 10;
/// Packets one FEC packet can cover: 16 with the short mask, 48 with the long one.
pub const MAX_PROTECTED: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FecError {
    /// A packet shorter than an RTP header, or a FEC payload shorter than its headers.
    Truncated,
    /// The group is empty, larger than `MAX_PROTECTED`, or its sequence numbers are not
    /// within 48 of the first.
    BadGroup,
}

fn seq(pkt: &[u8]) -> u16 {
    u16::from_be_bytes([pkt[2], pkt[3]])
}

/// The FEC payload protecting `packets`, which must all be RTP packets of one stream whose
/// sequence numbers lie within `MAX_PROTECTED` after `packets[0]`'s (gaps are allowed).
pub fn encode(packets: &[&[u8]]) -> Result<Vec<u8>, FecError> {
    let first = packets.first().ok_or(FecError::BadGroup)?;
    if packets.len() > MAX_PROTECTED || packets.iter().any(|p| p.len() < RTP_FIXED) || first.len() < RTP_FIXED {
        return Err(if packets.len() > MAX_PROTECTED { FecError::BadGroup } else { FecError::Truncated });
    }
    let base = seq(first);
    let mut mask: u64 = 0;
    for p in packets {
        let offset = seq(p).wrapping_sub(base) as usize;
        if offset >= MAX_PROTECTED || mask & (1 << (47 - offset)) != 0 {
            return Err(FecError::BadGroup);
        }
        mask |= 1 << (47 - offset);
    }
    let long = mask & 0xffff_ffff != 0;
    let level_header = if long { 8 } else { 4 };
    let protection = packets.iter().map(|p| p.len() - RTP_FIXED).max().unwrap_or(0);
    let mut out = vec![0u8; FEC_HEADER + level_header + protection];
    let mut length_recovery: u16 = 0;
    for p in packets {
        out[0] ^= p[0];
        out[1] ^= p[1];
        for i in 0..4 {
            out[4 + i] ^= p[4 + i];
        }
        length_recovery ^= (p.len() - RTP_FIXED) as u16;
        let body = &p[RTP_FIXED..];
        for (o, b) in out[FEC_HEADER + level_header..].iter_mut().zip(body) {
            *o ^= b;
        }
    }
    // E = 0 (no extension of the FEC header), L = long mask; keep P, X and CC recovery.
    out[0] = (out[0] & 0x3f) | if long { 0x40 } else { 0 };
    out[2..4].copy_from_slice(&base.to_be_bytes());
    out[8..10].copy_from_slice(&length_recovery.to_be_bytes());
    out[10..12].copy_from_slice(&(protection as u16).to_be_bytes());
    let mask_bytes = mask.to_be_bytes();
    // The mask is the top 16 (or 48) bits of the 48 we built.
    out[12..12 + level_header - 2].copy_from_slice(&mask_bytes[2..2 + level_header - 2]);
    Ok(out)
}

/// Zero the values of the header extensions with `ids` in an RTP packet, in place: libwebrtc
/// zeroes the extensions a sender rewrites per transmission (transport-wide sequence number,
/// absolute send time, transmission offset) on both sides of the XOR, so parity computed before
/// they are known still matches what the receiver holds. Handles one-byte (RFC 8285 `0xBEDE`)
/// and two-byte (`0x100x`) forms; anything malformed is left as it is.
pub fn zero_extensions(packet: &mut [u8], ids: &[u8]) {
    if packet.len() < RTP_FIXED || packet[0] & 0x10 == 0 || ids.is_empty() {
        return;
    }
    let start = RTP_FIXED + 4 * (packet[0] & 0x0f) as usize;
    if packet.len() < start + 4 {
        return;
    }
    let profile = u16::from_be_bytes([packet[start], packet[start + 1]]);
    let words = u16::from_be_bytes([packet[start + 2], packet[start + 3]]) as usize;
    let end = start + 4 + 4 * words;
    if packet.len() < end {
        return;
    }
    let one_byte = profile == 0xbede;
    if !one_byte && profile & 0xfff0 != 0x1000 {
        return;
    }
    let mut i = start + 4;
    while i < end {
        let b = packet[i];
        if b == 0 {
            // Padding between elements.
            i += 1;
            continue;
        }
        let (id, len, value) = if one_byte {
            if b >> 4 == 15 {
                return; // reserved id: stop, as RFC 8285 says
            }
            (b >> 4, (b & 0x0f) as usize + 1, i + 1)
        } else {
            if i + 1 >= end {
                return;
            }
            (b, packet[i + 1] as usize, i + 2)
        };
        if value + len > end {
            return;
        }
        if ids.contains(&id) {
            packet[value..value + len].fill(0);
        }
        i = value + len;
    }
}

/// What one FEC payload says it protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    pub base: u16,
    /// Bit `47 - i` set: sequence number `base + i` is protected.
    pub mask: u64,
}

impl Protection {
    pub fn parse(fec: &[u8]) -> Result<Self, FecError> {
        if fec.len() < FEC_HEADER + 4 {
            return Err(FecError::Truncated);
        }
        let long = fec[0] & 0x40 != 0;
        let level_header = if long { 8 } else { 4 };
        if fec.len() < FEC_HEADER + level_header {
            return Err(FecError::Truncated);
        }
        let mut bytes = [0u8; 8];
        bytes[2..2 + level_header - 2].copy_from_slice(&fec[12..12 + level_header - 2]);
        Ok(Protection { base: u16::from_be_bytes([fec[2], fec[3]]), mask: u64::from_be_bytes(bytes) })
    }

    pub fn protected(&self) -> impl Iterator<Item = u16> + '_ {
        (0..MAX_PROTECTED as u16).filter(|i| self.mask & (1 << (47 - i)) != 0).map(|i| self.base.wrapping_add(i))
    }
}

/// Recover the one packet of `fec`'s group that is missing from `have` (looked up by sequence
/// number). `ssrc` is the stream's (the FEC packet's own). Returns `None` when none or more
/// than one protected packet is missing.
pub fn recover<'a>(fec: &[u8], ssrc: u32, have: impl Fn(u16) -> Option<&'a [u8]>) -> Result<Option<Vec<u8>>, FecError> {
    let protection = Protection::parse(fec)?;
    let long = fec[0] & 0x40 != 0;
    let level_header = if long { 8 } else { 4 };
    let protection_len = u16::from_be_bytes([fec[10], fec[11]]) as usize;
    let body = &fec[FEC_HEADER + level_header..];
    if body.len() < protection_len {
        return Err(FecError::Truncated);
    }
    let mut missing = None;
    let mut head = [fec[0], fec[1], fec[4], fec[5], fec[6], fec[7]];
    let mut length = u16::from_be_bytes([fec[8], fec[9]]);
    let mut payload = body[..protection_len].to_vec();
    for s in protection.protected() {
        match have(s) {
            Some(p) if p.len() >= RTP_FIXED => {
                head[0] ^= p[0];
                head[1] ^= p[1];
                for i in 0..4 {
                    head[2 + i] ^= p[4 + i];
                }
                length ^= (p.len() - RTP_FIXED) as u16;
                for (o, b) in payload.iter_mut().zip(&p[RTP_FIXED..]) {
                    *o ^= b;
                }
            }
            Some(_) => return Err(FecError::Truncated),
            None if missing.is_some() => return Ok(None),
            None => missing = Some(s),
        }
    }
    let Some(missing) = missing else { return Ok(None) };
    let length = length as usize;
    if length > payload.len() {
        // The parity does not add up (a corrupted FEC packet, or packets not of this group).
        return Err(FecError::BadGroup);
    }
    let mut out = Vec::with_capacity(RTP_FIXED + length);
    out.push(0x80 | (head[0] & 0x3f));
    out.push(head[1]);
    out.extend_from_slice(&missing.to_be_bytes());
    out.extend_from_slice(&head[2..6]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&payload[..length]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An RTP packet with a one-byte-header extension block and a payload of `len` bytes.
    fn packet(seq: u16, ts: u32, marker: bool, len: usize, fill: u8) -> Vec<u8> {
        let mut p = vec![0x90, if marker { 0x80 | 96 } else { 96 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        // Extension: profile 0xBEDE, one word: id 1 (mid "0") + padding.
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, b'0', 0, 0]);
        p.extend((0..len).map(|i| fill.wrapping_add(i as u8)));
        p
    }

    #[test]
    fn one_lost_packet_comes_back_byte_for_byte() {
        let pkts: Vec<Vec<u8>> =
            (0..5).map(|i| packet(65_533u16.wrapping_add(i), 9000, i == 4, 100 + 37 * i as usize, i as u8)).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| &p[..]).collect();
        let fec = encode(&refs).unwrap();
        assert_eq!(Protection::parse(&fec).unwrap().protected().count(), 5);
        for lost in 0..5 {
            let have = |s: u16| pkts.iter().find(|p| seq(p) == s && s != seq(&pkts[lost])).map(|p| &p[..]);
            let got = recover(&fec, 0x1234_5678, have).unwrap().expect("recovered");
            assert_eq!(got, pkts[lost], "packet {lost}");
        }
    }

    #[test]
    fn two_losses_in_one_group_are_not_guessed() {
        let pkts: Vec<Vec<u8>> = (0..3).map(|i| packet(10 + i, 0, false, 50, 0)).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| &p[..]).collect();
        let fec = encode(&refs).unwrap();
        let have = |s: u16| (s == 10).then(|| &pkts[0][..]);
        assert_eq!(recover(&fec, 0x1234_5678, have), Ok(None));
        let all = |s: u16| pkts.iter().find(|p| seq(p) == s).map(|p| &p[..]);
        assert_eq!(recover(&fec, 0x1234_5678, all), Ok(None), "nothing missing");
    }

    #[test]
    fn long_masks_and_gaps() {
        // 20 packets with every third sequence number skipped: needs the 48-bit mask.
        let pkts: Vec<Vec<u8>> =
            (0..30u16).filter(|i| i % 3 != 2).map(|i| packet(1000 + i, 0, false, 30 + i as usize, 7)).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| &p[..]).collect();
        let fec = encode(&refs).unwrap();
        assert_eq!(fec[0] & 0x40, 0x40, "L bit");
        let lost = seq(&pkts[13]);
        let have = |s: u16| pkts.iter().find(|p| seq(p) == s && s != lost).map(|p| &p[..]);
        assert_eq!(recover(&fec, 0x1234_5678, have).unwrap().as_deref(), Some(&pkts[13][..]));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(encode(&[]), Err(FecError::BadGroup));
        assert_eq!(encode(&[&[0u8; 5][..]]), Err(FecError::Truncated));
        let a = packet(0, 0, false, 10, 0);
        let b = packet(48, 0, false, 10, 0);
        assert_eq!(encode(&[&a, &b]), Err(FecError::BadGroup), "beyond the mask");
        assert_eq!(encode(&[&a, &a]), Err(FecError::BadGroup), "same packet twice");
        assert_eq!(Protection::parse(&[0u8; 13]), Err(FecError::Truncated));
        // A corrupted length recovery must not read past the payload.
        let mut fec = encode(&[&a[..]]).unwrap();
        fec[8] = 0xff;
        assert_eq!(recover(&fec, 1, |_| None), Err(FecError::BadGroup));
        for n in 0..fec.len() {
            let _ = recover(&fec[..n], 1, |_| None);
        }
    }

    #[test]
    fn mutable_extensions_are_zeroed_and_others_kept() {
        // One-byte form: id 1 = mid "0", id 3 = 2-byte transport-wide seq, id 2 = 3-byte
        // abs-send-time, then padding.
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1];
        p.extend_from_slice(&[0xbe, 0xde, 0, 3, 0x10, b'0', 0x31, 0xab, 0xcd, 0x22, 1, 2, 3, 0, 0, 0]);
        p.extend_from_slice(b"payload");
        let mut z = p.clone();
        zero_extensions(&mut z, &[3, 2]);
        assert_eq!(&z[16..28], &[0x10, b'0', 0x31, 0, 0, 0x22, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&z[28..], b"payload");
        // Two-byte form.
        let mut t = vec![0x90, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0x10, 0x00, 0, 2, 1, 1, b'0', 3, 2, 0xab, 0xcd, 0];
        zero_extensions(&mut t, &[3]);
        assert_eq!(&t[16..], &[1, 1, b'0', 3, 2, 0, 0, 0]);
        // Malformed lengths: nothing read past the end, nothing changed.
        let mut bad = p.clone();
        bad[15] = 200;
        let before = bad.clone();
        zero_extensions(&mut bad, &[3]);
        assert_eq!(bad, before);
        for n in 0..p.len() {
            zero_extensions(&mut p.clone()[..n], &[1, 2, 3]);
        }
    }

    /// Deterministic pseudo-random numbers (xorshift), so the loss patterns repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 1_000_000) as f64 / 1_000_000.0
        }
    }

    /// Frames of `k` packets protected by `m` interleaved FEC packets (FEC i covers packets
    /// i, i+m, …), under random loss of media and FEC alike. Every packet the decoder returns
    /// must equal the lost original, and the loss left over must fall as expected.
    #[test]
    fn random_loss_is_repaired_and_never_corrupts() {
        let (k, m, loss, frames) = (10usize, 4usize, 0.2, 2000);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut lost_total, mut left_total) = (0usize, 0usize);
        for f in 0..frames {
            let base = (f * k) as u16;
            let pkts: Vec<Vec<u8>> = (0..k)
                .map(|i| {
                    packet(
                        base.wrapping_add(i as u16),
                        f as u32 * 3000,
                        i + 1 == k,
                        200 + (f * 7 + i * 13) % 900,
                        f as u8,
                    )
                })
                .collect();
            let fecs: Vec<Vec<u8>> = (0..m)
                .map(|j| encode(&pkts.iter().skip(j).step_by(m).map(|p| &p[..]).collect::<Vec<_>>()).unwrap())
                .collect();
            let mut got: BTreeMap<u16, Vec<u8>> =
                pkts.iter().filter(|_| rng.next() >= loss).map(|p| (seq(p), p.clone())).collect();
            let fecs: Vec<&Vec<u8>> = fecs.iter().filter(|_| rng.next() >= loss).collect();
            lost_total += k - got.len();
            loop {
                let mut progress = false;
                for fec in &fecs {
                    if let Some(p) = recover(fec, 0x1234_5678, |s| got.get(&s).map(|v| &v[..])).unwrap() {
                        let s = seq(&p);
                        assert_eq!(p, pkts[s.wrapping_sub(base) as usize], "frame {f}: a recovered packet differs");
                        got.insert(s, p);
                        progress = true;
                    }
                }
                if !progress {
                    break;
                }
            }
            left_total += k - got.len();
        }
        let before = lost_total as f64 / (k * frames) as f64;
        let after = left_total as f64 / (k * frames) as f64;
        eprintln!("media loss {before:.3} -> {after:.3} with {m} FEC per {k}");
        // Each FEC packet covers 2-3 packets: a single loss among them comes back unless the
        // FEC packet itself is lost. Expect well over half of the losses repaired.
        assert!(after < before * 0.5, "loss {before} left {after}");
    }
}
