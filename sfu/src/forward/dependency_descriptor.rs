//! The Dependency Descriptor RTP header extension (AV1 RTP specification, appendix A): how
//! Chromium describes the layers of AV1 SVC, and the temporal layers of H.264 (whose payload
//! says nothing about them). Sans-IO and allocation-free: a structure lives in fixed arrays.
//!
//! A packet carries a 3-byte mandatory part (frame start/end, template id, frame number) and,
//! on the first packet of a keyframe, the *template dependency structure*: every template's
//! spatial and temporal id and its decode target indications (DTIs). Later packets name a
//! template by id, so a packet can only be read with the structure of the last keyframe.
//!
//! What it is used for here: layer ids for the selectors (AV1 spatial and temporal, H.264 and
//! VP8 temporal), switch points from the DTIs, keyframes (a new structure), and each spatial
//! layer's size from the structure's resolutions. Receivers get it only with AV1 SVC, unchanged
//! (see `dd_extension`): a Chromium receiver cannot tell the spatial layers of one temporal
//! unit apart without it, and the dependencies it lists stay true for any subset of layers we
//! forward. For other codecs they do without it: LiveKit rewrites it for every receiver, and
//! mediasoup found Chromium receivers given it freeze far more under loss (webrtc issue
//! 417857735), so there a receiver assembles frames from the codec's own payload as before.

/// The URI Chromium offers it under.
pub const URI: &str = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

const MAX_TEMPLATES: usize = 64;
const MAX_DECODE_TARGETS: usize = 32;
const MAX_SPATIAL: usize = 4;

/// Decode target indication (table A.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dti {
    NotPresent = 0,
    Discardable = 1,
    /// A receiver may start decoding this decode target here.
    Switch = 2,
    Required = 3,
}

impl Dti {
    fn from_bits(b: u64) -> Dti {
        match b & 3 {
            0 => Dti::NotPresent,
            1 => Dti::Discardable,
            2 => Dti::Switch,
            _ => Dti::Required,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Template {
    spatial: u8,
    temporal: u8,
    /// Two bits per decode target, target 0 in the lowest bits.
    dtis: u64,
}

/// The template dependency structure of one keyframe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure {
    template_id_offset: u8,
    templates: [Template; MAX_TEMPLATES],
    template_count: u8,
    decode_targets: u8,
    /// (spatial id, highest temporal id) of each decode target.
    target_layers: [(u8, u8); MAX_DECODE_TARGETS],
    chains: u8,
    /// Render size per spatial layer, when the sender says.
    resolutions: Option<[(u16, u16); MAX_SPATIAL]>,
    max_spatial: u8,
}

impl Structure {
    /// Width and height of a spatial layer, when the structure carries resolutions.
    pub fn resolution(&self, spatial: u8) -> Option<(u16, u16)> {
        if spatial > self.max_spatial {
            return None;
        }
        self.resolutions.map(|r| r[spatial as usize])
    }

    pub fn max_spatial(&self) -> u8 {
        self.max_spatial
    }
}

/// What one packet's descriptor says about its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub start: bool,
    pub end: bool,
    pub frame_number: u16,
    pub spatial: u8,
    pub temporal: u8,
    /// This frame's DTI for each decode target (two bits each, target 0 lowest).
    dtis: u64,
    /// The packet carried a new structure (the first packet of a keyframe).
    pub new_structure: bool,
    /// Decode targets the sender currently produces (bit i = target i).
    pub active_targets: Option<u32>,
}

impl Frame {
    pub fn dti(&self, target: usize) -> Dti {
        Dti::from_bits(self.dtis >> (2 * target))
    }

    /// The spatial layers whose receivers need this frame: bit S is set when the frame is
    /// present (DTI not NotPresent) in the decode target of spatial layer S at its highest
    /// temporal layer. In L3T3_KEY a delta frame of S0 is needed by S0 receivers only (S1 and
    /// S2 predict from their own layer), a keyframe by all.
    pub fn needed_by(&self, s: &Structure) -> u8 {
        let mut mask = 0;
        for spatial in 0..=s.max_spatial {
            let top = (0..s.decode_targets as usize)
                .filter(|&t| s.target_layers[t].0 == spatial)
                .max_by_key(|&t| s.target_layers[t].1);
            if top.is_some_and(|t| self.dti(t) != Dti::NotPresent) {
                mask |= 1 << spatial;
            }
        }
        mask
    }

    /// The temporal layers of this frame's spatial layer that a receiver may move up to here:
    /// bit T is set when the frame is a Switch for the decode target (spatial, T). In L1T3 a
    /// T0 frame switches to every target, a T1 frame to T0-2 only (it is Discardable for T0-1).
    pub fn switch_mask(&self, s: &Structure) -> u8 {
        let mut mask = 0;
        for t in 0..s.decode_targets as usize {
            let (spatial, temporal) = s.target_layers[t];
            if spatial == self.spatial && temporal < 8 && self.dti(t) == Dti::Switch {
                mask |= 1 << temporal;
            }
        }
        mask
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its fields say.
    Truncated,
    /// Names a template we have no structure for (packets before the first keyframe, or after
    /// a structure change we missed).
    NoStructure,
    UnknownTemplate,
    /// More templates or decode targets than the format allows.
    Invalid,
}

struct Bits<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// f(n): `n` bits, most significant first.
    fn f(&mut self, n: usize) -> Result<u64, Error> {
        let mut v = 0u64;
        for _ in 0..n {
            let byte = *self.buf.get(self.pos / 8).ok_or(Error::Truncated)?;
            v = (v << 1) | u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool, Error> {
        Ok(self.f(1)? == 1)
    }

    /// ns(n): a value below `n` in as few bits as it takes (non-symmetric unsigned).
    fn ns(&mut self, n: u64) -> Result<u64, Error> {
        let mut w = 0;
        let mut x = n;
        while x != 0 {
            x >>= 1;
            w += 1;
        }
        let m = (1u64 << w) - n;
        let v = self.f(w - 1)?;
        if v < m {
            return Ok(v);
        }
        let extra = self.f(1)?;
        Ok((v << 1) - m + extra)
    }
}

/// Reads one descriptor. `current` is the structure from the last keyframe; when the packet
/// carries a new one it is returned beside the frame and the caller keeps it from then on.
pub fn parse(buf: &[u8], current: Option<&Structure>) -> Result<(Frame, Option<Structure>), Error> {
    let mut r = Bits::new(buf);
    let start = r.flag()?;
    let end = r.flag()?;
    let template_id = r.f(6)? as u8;
    let frame_number = r.f(16)? as u16;

    let (mut custom_dtis, mut custom_fdiffs, mut custom_chains) = (false, false, false);
    let mut new_structure = None;
    let mut active_targets = None;
    if buf.len() > 3 {
        let structure_present = r.flag()?;
        let active_present = r.flag()?;
        custom_dtis = r.flag()?;
        custom_fdiffs = r.flag()?;
        custom_chains = r.flag()?;
        if structure_present {
            let s = read_structure(&mut r)?;
            active_targets = Some(all_targets(s.decode_targets));
            new_structure = Some(s);
        }
        if active_present {
            let s = new_structure.as_ref().or(current).ok_or(Error::NoStructure)?;
            active_targets = Some(r.f(s.decode_targets as usize)? as u32);
        }
    }
    let s = new_structure.as_ref().or(current).ok_or(Error::NoStructure)?;
    let index = (usize::from(template_id) + MAX_TEMPLATES - usize::from(s.template_id_offset)) % MAX_TEMPLATES;
    if index >= s.template_count as usize {
        return Err(Error::UnknownTemplate);
    }
    let template = s.templates[index];
    let mut dtis = template.dtis;
    if custom_dtis {
        dtis = 0;
        for t in 0..s.decode_targets as usize {
            dtis |= r.f(2)? << (2 * t);
        }
    }
    if custom_fdiffs {
        // Frame diffs matter to a decoder tracking references; a selector only needs layers.
        loop {
            let size = r.f(2)? as usize;
            if size == 0 {
                break;
            }
            r.f(4 * size)?;
        }
    }
    if custom_chains {
        r.f(8 * s.chains as usize)?;
    }
    let frame = Frame {
        start,
        end,
        frame_number,
        spatial: template.spatial,
        temporal: template.temporal,
        dtis,
        new_structure: new_structure.is_some(),
        active_targets,
    };
    Ok((frame, new_structure))
}

fn all_targets(n: u8) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

fn read_structure(r: &mut Bits) -> Result<Structure, Error> {
    let template_id_offset = r.f(6)? as u8;
    let decode_targets = r.f(5)? as u8 + 1;
    let mut s = Structure {
        template_id_offset,
        templates: [Template::default(); MAX_TEMPLATES],
        template_count: 0,
        decode_targets,
        target_layers: [(0, 0); MAX_DECODE_TARGETS],
        chains: 0,
        resolutions: None,
        max_spatial: 0,
    };
    // template_layers(): templates in order of spatial, then temporal id.
    let (mut spatial, mut temporal) = (0u8, 0u8);
    loop {
        let n = s.template_count as usize;
        if n >= MAX_TEMPLATES {
            return Err(Error::Invalid);
        }
        s.templates[n].spatial = spatial;
        s.templates[n].temporal = temporal;
        s.template_count += 1;
        match r.f(2)? {
            0 => {}
            1 => temporal += 1,
            2 => {
                temporal = 0;
                spatial += 1;
            }
            _ => break,
        }
        if spatial as usize >= MAX_SPATIAL || temporal > 7 {
            return Err(Error::Invalid);
        }
    }
    s.max_spatial = spatial;
    let count = s.template_count as usize;
    let targets = decode_targets as usize;
    // template_dtis()
    for t in &mut s.templates[..count] {
        for d in 0..targets {
            t.dtis |= r.f(2)? << (2 * d);
        }
    }
    // template_fdiffs(): skipped over (see parse()).
    for _ in 0..count {
        while r.flag()? {
            r.f(4)?;
        }
    }
    // template_chains()
    s.chains = r.ns(targets as u64 + 1)? as u8;
    if s.chains > 0 {
        for _ in 0..targets {
            r.ns(u64::from(s.chains))?;
        }
        r.f(4 * count * s.chains as usize)?;
    }
    // decode_target_layers(): derived, not transmitted.
    for d in 0..targets {
        let (mut sp, mut tp) = (0, 0);
        for t in &s.templates[..count] {
            if Dti::from_bits(t.dtis >> (2 * d)) != Dti::NotPresent {
                sp = sp.max(t.spatial);
                tp = tp.max(t.temporal);
            }
        }
        s.target_layers[d] = (sp, tp);
    }
    if r.flag()? {
        let mut res = [(0u16, 0u16); MAX_SPATIAL];
        for layer in res.iter_mut().take(s.max_spatial as usize + 1) {
            let w = r.f(16)? as u16;
            let h = r.f(16)? as u16;
            *layer = (w.wrapping_add(1), h.wrapping_add(1));
        }
        s.resolutions = Some(res);
    }
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes descriptors bit by bit, the format read back (test vectors for the selectors).
    #[derive(Default)]
    pub struct BitWriter {
        pub bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        pub fn put(&mut self, n: usize, v: u64) {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((v >> i) & 1) as u8;
                let last = self.bytes.len() - 1;
                self.bytes[last] |= bit << (7 - self.bits % 8);
                self.bits += 1;
            }
        }
    }

    /// A description of a structure: per template (spatial, temporal, DTIs by target as a
    /// string of "-DSR"), chain count, resolutions.
    pub struct Spec<'a> {
        pub templates: &'a [(u8, u8, &'a str)],
        pub resolutions: Option<&'a [(u16, u16)]>,
    }

    fn dti_bits(c: char) -> u64 {
        match c {
            '-' => 0,
            'D' => 1,
            'S' => 2,
            _ => 3,
        }
    }

    /// A descriptor for template `template` (index into the spec), with the structure attached
    /// when `with_structure`.
    pub fn descriptor(
        spec: &Spec,
        template: usize,
        start: bool,
        end: bool,
        frame: u16,
        with_structure: bool,
    ) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(1, start as u64);
        w.put(1, end as u64);
        w.put(6, template as u64); // template_id_offset 0
        w.put(16, u64::from(frame));
        if !with_structure {
            return w.bytes;
        }
        w.put(5, 0b10000); // structure present, nothing custom
        w.put(6, 0); // template_id_offset
        let targets = spec.templates[0].2.len();
        w.put(5, targets as u64 - 1);
        for (i, t) in spec.templates.iter().enumerate() {
            let next = spec.templates.get(i + 1);
            let idc = match next {
                None => 3,
                Some(n) if n.0 > t.0 => 2,
                Some(n) if n.1 > t.1 => 1,
                Some(_) => 0,
            };
            w.put(2, idc);
        }
        for t in spec.templates {
            for c in t.2.chars() {
                w.put(2, dti_bits(c));
            }
        }
        for _ in spec.templates {
            w.put(1, 1); // one fdiff of 1
            w.put(4, 0);
            w.put(1, 0);
        }
        // chain_cnt = ns(targets + 1) = 0: the smallest code, w-1 zero bits.
        let bits = 64 - (targets as u64 + 1).leading_zeros() as usize;
        w.put(bits - 1, 0);
        match spec.resolutions {
            Some(res) => {
                w.put(1, 1);
                for (wd, ht) in res {
                    w.put(16, u64::from(wd - 1));
                    w.put(16, u64::from(ht - 1));
                }
            }
            None => w.put(1, 0),
        }
        w.bytes
    }

    /// L1T3 as libwebrtc describes it: decode targets T0, T0-1, T0-2.
    pub const L1T3: Spec = Spec {
        templates: &[(0, 0, "SSS"), (0, 0, "SSS"), (0, 1, "-DS"), (0, 2, "--D"), (0, 2, "--D")],
        resolutions: None,
    };

    /// L3T3_KEY as libwebrtc describes it: nine decode targets (S0T0..S2T2); the key
    /// picture's frames (first template of each spatial layer) serve every layer above them,
    /// delta frames only their own layer.
    pub const L3T3_KEY: Spec = Spec {
        templates: &[
            (0, 0, "SSSSSSSSS"),
            (0, 0, "SSS------"),
            (0, 1, "-DS------"),
            (0, 2, "--D------"),
            (1, 0, "---SSSSSS"),
            (1, 0, "---SSS---"),
            (1, 1, "----DS---"),
            (1, 2, "-----D---"),
            (2, 0, "------SSS"),
            (2, 0, "------SSS"),
            (2, 1, "-------DS"),
            (2, 2, "--------D"),
        ],
        resolutions: Some(&[(320, 180), (640, 360), (1280, 720)]),
    };

    #[test]
    fn mandatory_fields_need_a_structure() {
        let d = descriptor(&L1T3, 2, true, true, 7, false);
        assert_eq!(d.len(), 3);
        assert_eq!(parse(&d, None), Err(Error::NoStructure));
        assert_eq!(parse(&d[..2], None), Err(Error::Truncated));
        assert_eq!(parse(&[], None), Err(Error::Truncated));
    }

    #[test]
    fn l1t3_structure_then_frames() {
        let key = descriptor(&L1T3, 0, true, false, 100, true);
        let (frame, s) = parse(&key, None).unwrap();
        let s = s.unwrap();
        assert!(frame.new_structure && frame.start && !frame.end);
        assert_eq!((frame.spatial, frame.temporal, frame.frame_number), (0, 0, 100));
        assert_eq!(frame.active_targets, Some(0b111));
        assert_eq!(s.decode_targets, 3);
        assert_eq!(&s.target_layers[..3], &[(0, 0), (0, 1), (0, 2)]);
        assert_eq!(s.resolution(0), None);

        let (t1, none) = parse(&descriptor(&L1T3, 2, true, true, 101, false), Some(&s)).unwrap();
        assert!(none.is_none());
        assert_eq!((t1.spatial, t1.temporal), (0, 1));
        assert_eq!(t1.dti(1), Dti::Discardable);
        assert_eq!(t1.dti(2), Dti::Switch);
        // Discardable for T0-1, Switch for T0-2: a T0 receiver may move to T2 here, not to T1.
        assert_eq!(t1.switch_mask(&s), 0b100);
        let (t2, _) = parse(&descriptor(&L1T3, 3, true, true, 102, false), Some(&s)).unwrap();
        assert_eq!((t2.spatial, t2.temporal), (0, 2));
        assert_eq!(t2.switch_mask(&s), 0);
        let (t0, _) = parse(&descriptor(&L1T3, 1, true, true, 103, false), Some(&s)).unwrap();
        assert_eq!(t0.switch_mask(&s), 0b111);
        // A template id past the structure's templates.
        assert_eq!(parse(&descriptor(&L1T3, 9, true, true, 104, false), Some(&s)), Err(Error::UnknownTemplate));
    }

    #[test]
    fn l3t3_key_layers_and_resolutions() {
        let key = descriptor(&L3T3_KEY, 0, true, true, 1, true);
        let (frame, s) = parse(&key, None).unwrap();
        let s = s.unwrap();
        assert!(frame.new_structure);
        assert_eq!(s.max_spatial(), 2);
        assert_eq!(s.decode_targets, 9);
        assert_eq!(s.target_layers[4], (1, 1));
        assert_eq!(s.template_count, 12);
        assert_eq!(s.target_layers[8], (2, 2));
        assert_eq!(s.resolution(0), Some((320, 180)));
        assert_eq!(s.resolution(2), Some((1280, 720)));
        assert_eq!(s.resolution(3), None);
        for (i, &(sp, tp, _)) in L3T3_KEY.templates.iter().enumerate() {
            // (every template reads back as its own layer)
            let (f, _) = parse(&descriptor(&L3T3_KEY, i, true, true, 2 + i as u16, false), Some(&s)).unwrap();
            assert_eq!((f.spatial, f.temporal), (sp, tp), "template {i}");
        }
        // S1T1 (template 6): Switch for target S1T2 only.
        let (f, _) = parse(&descriptor(&L3T3_KEY, 6, true, true, 9, false), Some(&s)).unwrap();
        assert_eq!(f.switch_mask(&s), 0b100);
        assert_eq!(f.dti(5), Dti::Switch);
        // The keyframe is a Switch for every target, but only its own layer's count here.
        let (k, _) = parse(&descriptor(&L3T3_KEY, 0, true, true, 10, false), Some(&s)).unwrap();
        assert_eq!(k.switch_mask(&s), 0b111);
        // Who needs what: the key picture's S0 everyone, its S1 the S1 and S2 receivers; a
        // delta S0 frame S0 receivers only; a delta S1 frame S1 receivers only (KEY mode: no
        // inter-layer prediction after the key picture).
        assert_eq!(k.needed_by(&s), 0b111);
        let (k1, _) = parse(&descriptor(&L3T3_KEY, 4, true, true, 11, false), Some(&s)).unwrap();
        assert_eq!(k1.needed_by(&s), 0b110);
        let (d0, _) = parse(&descriptor(&L3T3_KEY, 1, true, true, 12, false), Some(&s)).unwrap();
        assert_eq!(d0.needed_by(&s), 0b001);
        assert_eq!(f.needed_by(&s), 0b010);
    }

    #[test]
    fn extended_fields_custom_dtis_and_active_targets() {
        let (_, s) = parse(&descriptor(&L1T3, 0, true, true, 1, true), None).unwrap();
        let s = s.unwrap();
        let mut w = BitWriter::default();
        w.put(1, 1);
        w.put(1, 1);
        w.put(6, 2); // template 2: (0, 1)
        w.put(16, 5);
        w.put(5, 0b01111); // active targets, custom dtis, fdiffs, chains
        w.put(3, 0b011); // targets 0 and 1 active
        w.put(6, 0b00_10_10); // dtis: target0 -, target1 S, target2 S
        w.put(2, 1); // one fdiff, 4 bits
        w.put(4, 0);
        w.put(2, 0);
        // chains: none in this structure
        let (f, _) = parse(&w.bytes, Some(&s)).unwrap();
        assert_eq!(f.active_targets, Some(0b011));
        assert_eq!(f.dti(0), Dti::NotPresent);
        assert_eq!(f.dti(1), Dti::Switch);
        assert_eq!(f.dti(2), Dti::Switch);
        assert_eq!(f.switch_mask(&s), 0b110);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678u32;
        let mut s = None;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len % 40)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            if let Ok((_, Some(new))) = parse(&bytes, s.as_ref()) {
                s = Some(new);
            }
        }
    }

    #[test]
    fn ns_reads_the_shortest_codes() {
        // ns(3): w=2, m=1; 0 -> "0", 1 -> "10", 2 -> "11".
        for (bits, want) in [(0b0000_0000u8, 0), (0b1000_0000, 1), (0b1100_0000, 2)] {
            let b = [bits];
            let mut r = Bits::new(&b);
            assert_eq!(r.ns(3).unwrap(), want);
        }
    }
}
