//! Layer selection driven by the Dependency Descriptor: AV1 L3T3_KEY (spatial and temporal
//! layers in one stream) and H.264 L1T3 (temporal layers the payload does not show), on packet
//! sequences built in the descriptor's own format.

use std::time::{Duration, Instant};

use super::dependency_descriptor::tests::{descriptor, Spec, L1T3, L3T3_KEY};
use super::*;

/// AV1 aggregation header: W=1, plus N=1 on the first packet of a new coded video sequence.
const AV1_KEY: &[u8] = &[0x18, 0x00];
const AV1_DELTA: &[u8] = &[0x10, 0x00];
/// H.264: an IDR slice NAL and a non-IDR slice NAL.
const H264_IDR: &[u8] = &[0x65, 0x88];
const H264_SLICE: &[u8] = &[0x41, 0x9a];

/// The template of a frame of (spatial, temporal): in both specs each spatial layer's first
/// T0 template belongs to the key picture, the next one to delta pictures.
fn template(spec: &Spec, spatial: u8, temporal: u8, key: bool) -> usize {
    let first = spec.templates.iter().position(|t| (t.0, t.1) == (spatial, temporal)).unwrap();
    let has_key_template = temporal == 0 && spec.templates.get(first + 1).is_some_and(|t| (t.0, t.1) == (spatial, 0));
    if has_key_template && !key {
        first + 1
    } else {
        first
    }
}

struct Stream {
    f: Forwarder<u32>,
    seq: u64,
    frame: u16,
    now: Instant,
    out: Vec<Forward<u32>>,
    /// (subscriber, spatial, temporal, marker) of every forward.
    got: Vec<(u32, u8, u8, bool)>,
    /// (subscriber, output sequence number) of every forward.
    seqs: Vec<(u32, u64)>,
}

impl Stream {
    fn new(codec: VideoCodec) -> Self {
        let mut f = Forwarder::default();
        f.add_track(1, TrackKind::Video, 90_000);
        f.set_codec(1, Some(codec), 90_000);
        Self { f, seq: 100, frame: 500, now: Instant::now(), out: Vec::new(), got: Vec::new(), seqs: Vec::new() }
    }

    /// One temporal unit: a single-packet frame per spatial layer up to `spatials`, the RTP
    /// marker on the last. Returns the keyframe request the forwarder made, if any.
    fn unit(&mut self, spec: &Spec, n: u64, spatials: u8, key: bool, payloads: (&[u8], &[u8])) -> Option<u8> {
        let temporal = if key { 0 } else { [0u8, 2, 1, 2][(n % 4) as usize] };
        let mut asked = None;
        for s in 0..spatials {
            let t = template(spec, s, temporal, key);
            let dd = descriptor(spec, t, true, true, self.frame, key && s == 0);
            let payload = if key && s == 0 { payloads.0 } else { payloads.1 };
            let m =
                PacketMeta { seq: self.seq, ts: 3000 * n as u32, marker: s + 1 == spatials, stream: 0, dd: Some(&dd) };
            let o = self.f.on_packet(1, m, payload, self.now, &mut self.out);
            asked = asked.or(o.request_keyframe);
            for fw in &self.out {
                self.got.push((fw.to, s, temporal, fw.marker));
                self.seqs.push((fw.to, fw.seq));
            }
            self.seq += 1;
            self.frame += 1;
        }
        self.now += Duration::from_millis(33);
        asked
    }

    fn of(&self, sub: u32) -> Vec<(u8, u8, bool)> {
        self.got.iter().filter(|g| g.0 == sub).map(|g| (g.1, g.2, g.3)).collect()
    }
}

#[test]
fn av1_svc_gives_each_subscriber_the_spatial_layers_its_tile_takes() {
    let mut st = Stream::new(VideoCodec::Av1);
    st.f.subscribe(1, 1, st.now);
    st.f.subscribe(1, 2, st.now);
    let small = Constraint { max_height: 360, ..Default::default() };
    st.f.set_constraint(1, 2, small, st.now);
    for n in 0..12 {
        st.unit(&L3T3_KEY, n, 3, n == 0, (AV1_KEY, AV1_DELTA));
    }
    let full = st.of(1);
    let tile = st.of(2);
    // The unlimited subscriber starts on the keyframe with all three layers (the structure
    // announced them), so it needs no second keyframe; after the key picture it gets S2 alone
    // (KEY mode: S2 no longer predicts from S0 and S1, which the descriptor says).
    assert_eq!(full.len(), 3 + 11);
    assert_eq!(full[..3].iter().map(|g| g.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(full[3..].iter().all(|&(s, _, m)| s == 2 && m));
    // The 360-px tile: the key picture's S0 and S1, then S1 alone, never S2; the marker on
    // S1's end.
    assert_eq!(tile.len(), 2 + 11);
    assert!(tile.iter().all(|&(s, _, _)| s <= 1));
    assert!(tile.iter().all(|&(s, _, m)| m == (s == 1)));
    // Each subscriber's sequence numbers run without a gap, dropped layers or not.
    for sub in [1, 2] {
        let seqs: Vec<u64> = st.seqs.iter().filter(|s| s.0 == sub).map(|s| s.1).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "subscriber {sub}: {seqs:?}");
    }
}

#[test]
fn a_cascade_link_takes_every_frame_of_an_svc_stream_for_the_viewers_beyond() {
    let mut st = Stream::new(VideoCodec::Av1);
    st.f.subscribe(1, 1, st.now);
    st.f.subscribe_all_streams(1, 2, st.now);
    for n in 0..12 {
        st.unit(&L3T3_KEY, n, 3, n == 0, (AV1_KEY, AV1_DELTA));
    }
    // A viewer gets S2 alone after the key picture; the link every layer's frames, since the
    // node beyond has viewers of S0 and S1 as well (without them they would get keyframes only).
    assert_eq!(st.of(1).len(), 3 + 11);
    let link = st.of(2);
    assert_eq!(link.len(), 3 * 12);
    for s in 0..3 {
        assert_eq!(link.iter().filter(|g| g.0 == s).count(), 12, "layer {s}: {link:?}");
    }
    let seqs: Vec<u64> = st.seqs.iter().filter(|s| s.0 == 2).map(|s| s.1).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

#[test]
fn av1_svc_moves_between_spatial_layers_at_keyframes() {
    let mut st = Stream::new(VideoCodec::Av1);
    st.f.subscribe(1, 1, st.now);
    for n in 0..4 {
        st.unit(&L3T3_KEY, n, 3, n == 0, (AV1_KEY, AV1_DELTA));
    }
    assert_eq!(st.f.current_layer(1, 1).map(|t| t.spatial), Some(2));
    // Squeezed to 180 px: it has had S2 alone since the key picture (no S0 history), so it
    // stays on S2 and a keyframe is asked for...
    st.now += KEYFRAME_RETRY;
    let asked =
        st.f.set_constraint(1, 1, Constraint { max_height: 180, ..Default::default() }, st.now).request_keyframe;
    assert_eq!(asked, Some(0), "a keyframe is asked for the move down");
    st.got.clear();
    st.unit(&L3T3_KEY, 4, 3, false, (AV1_KEY, AV1_DELTA));
    assert_eq!(st.of(1), vec![(2, 0, true)]);
    // ...which moves it to S0, alone from then on.
    st.got.clear();
    st.unit(&L3T3_KEY, 5, 3, true, (AV1_KEY, AV1_DELTA));
    st.unit(&L3T3_KEY, 6, 3, false, (AV1_KEY, AV1_DELTA));
    assert_eq!(st.of(1), vec![(0, 0, true), (0, 1, true)]);
    // Room again: delta pictures do not raise it (S1 and S2 predict from frames it never got)...
    st.now += KEYFRAME_RETRY;
    let asked = st.f.set_constraint(1, 1, Constraint::default(), st.now).request_keyframe;
    assert_eq!(asked, Some(0), "a keyframe is asked for the raise");
    st.got.clear();
    for n in 7..10 {
        st.unit(&L3T3_KEY, n, 3, false, (AV1_KEY, AV1_DELTA));
    }
    assert!(st.of(1).iter().all(|&(s, _, _)| s == 0));
    // ...the next keyframe does.
    st.got.clear();
    st.unit(&L3T3_KEY, 10, 3, true, (AV1_KEY, AV1_DELTA));
    assert_eq!(st.of(1).len(), 3);
}

#[test]
fn av1_without_a_structure_waits_and_counts_the_unreadable() {
    let mut st = Stream::new(VideoCodec::Av1);
    st.f.subscribe(1, 1, st.now);
    // Joined mid-stream: descriptors name templates of a structure never seen. Nothing is
    // forwarded (the payload's N bit is not set either) until a keyframe brings one.
    for n in 1..4 {
        st.unit(&L3T3_KEY, n, 3, false, (AV1_KEY, AV1_DELTA));
    }
    assert!(st.got.is_empty());
    assert_eq!(st.f.tracks[&1].dd_errors, 9);
    st.unit(&L3T3_KEY, 4, 3, true, (AV1_KEY, AV1_DELTA));
    assert_eq!(st.of(1).len(), 3);
}

#[test]
fn h264_temporal_layers_from_the_descriptor() {
    let mut st = Stream::new(VideoCodec::H264);
    st.f.subscribe(1, 1, st.now);
    st.f.set_constraint(1, 1, Constraint { max_temporal: 0, ..Default::default() }, st.now);
    for n in 0..8 {
        st.unit(&L1T3, n, 1, n == 0, (H264_IDR, H264_SLICE));
    }
    // Only T0 frames: units 0 and 4 of 0..8.
    assert_eq!(st.of(1), vec![(0, 0, true), (0, 0, true)]);
    // Raised to T1: not at unit 9 (T2), not at unit 10 (a T1 frame is only Discardable for
    // T0-1), but at the next T0 (unit 12), which is a Switch for every target.
    st.f.set_constraint(1, 1, Constraint { max_temporal: 1, ..Default::default() }, st.now);
    st.got.clear();
    for n in 9..15 {
        st.unit(&L1T3, n, 1, false, (H264_IDR, H264_SLICE));
    }
    let temporals: Vec<u8> = st.of(1).iter().map(|g| g.1).collect();
    assert_eq!(temporals, vec![0, 1]);
    // Raised to T2 from T0-1: at the first frame that switches to it — here the T0 of unit 16.
    st.f.set_constraint(1, 1, Constraint::default(), st.now);
    st.got.clear();
    for n in 15..20 {
        st.unit(&L1T3, n, 1, false, (H264_IDR, H264_SLICE));
    }
    let temporals: Vec<u8> = st.of(1).iter().map(|g| g.1).collect();
    assert_eq!(temporals, vec![0, 2, 1, 2]);
}

#[test]
fn h264_t0_receiver_moves_to_t2_at_a_t1_switch() {
    let mut st = Stream::new(VideoCodec::H264);
    st.f.subscribe(1, 1, st.now);
    st.f.set_constraint(1, 1, Constraint { max_temporal: 0, ..Default::default() }, st.now);
    for n in 0..5 {
        st.unit(&L1T3, n, 1, n == 0, (H264_IDR, H264_SLICE));
    }
    st.f.set_constraint(1, 1, Constraint::default(), st.now);
    st.got.clear();
    // Unit 5 is T2 (not a switch for anything), unit 6 is T1: a Switch for T0-2.
    for n in 5..9 {
        st.unit(&L1T3, n, 1, false, (H264_IDR, H264_SLICE));
    }
    let temporals: Vec<u8> = st.of(1).iter().map(|g| g.1).collect();
    assert_eq!(temporals, vec![1, 2, 0]);
}
