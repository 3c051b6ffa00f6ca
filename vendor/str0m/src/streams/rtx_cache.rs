use std::time::Duration;
use std::time::Instant;

use crate::io::DATAGRAM_MAX_PACKET_SIZE;
use crate::rtp_::{SeqNo, Ssrc};

use super::RtpPacket;
use super::compact::CachedPacket;
use super::rtx_cache_buf::EvictingBuffer;

const RTX_CACHE_SIZE_QUANTIZER: usize = 25;
const RTX_CACHE_QUANTIZE_SLOTS: usize = DATAGRAM_MAX_PACKET_SIZE / RTX_CACHE_SIZE_QUANTIZER;

#[derive(Debug)]
pub(crate) struct RtxCache {
    // Data, new additions here probably need to be cleared in [`clear`].
    packet_by_seq_no: EvictingBuffer<CachedPacket>,

    // Technically we want [Option<SeqNo>; X] to indicate the absence of
    // a SeqNo. However We can half the storage space by using the sentinel
    // values SeqNo::MAX to indicate None
    seq_no_by_quantized_size: [SeqNo; RTX_CACHE_QUANTIZE_SLOTS],

    // yunshi: the cached packet handed out for a resend, rebuilt from its compact form.
    resend: RtpPacket,

    // yunshi: the SSRC of the cached packets (a stream's packets all carry its own).
    ssrc: Ssrc,
}

impl RtxCache {
    pub fn new(max_packet_count: usize, max_packet_age: Duration) -> Self {
        Self {
            packet_by_seq_no: EvictingBuffer::new(10, max_packet_age, max_packet_count),
            seq_no_by_quantized_size: [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS],
            resend: RtpPacket::blank(),
            ssrc: 0.into(),
        }
    }

    /// yunshi: change how long packets are kept without dropping the cache. A shorter age
    /// takes effect as packets are next evicted.
    pub fn set_max_age(&mut self, max_packet_age: Duration) {
        self.packet_by_seq_no.set_max_age(max_packet_age);
    }

    /// The upstream entry point, kept for the fork's unit tests: the send path now hands over
    /// the compact packet the send queue kept (`cache_sent`).
    #[cfg(test)]
    pub fn cache_sent_packet(&mut self, packet: RtpPacket, now: Instant) {
        assert!(packet.nackable);
        let (seq_no, ssrc) = (packet.seq_no, packet.header.ssrc);
        self.cache_sent(seq_no, ssrc, CachedPacket::from_packet(packet), now);
    }

    /// yunshi: cache a sent packet already in compact form (as the send queue kept it).
    pub(crate) fn cache_sent(&mut self, seq_no: SeqNo, ssrc: Ssrc, packet: CachedPacket, now: Instant) {
        let quantized_size = packet.payload().len() / RTX_CACHE_SIZE_QUANTIZER;
        self.ssrc = ssrc;
        self.packet_by_seq_no.push(*seq_no, now, packet);
        self.seq_no_by_quantized_size[quantized_size] = seq_no;
        self.remove_old_packets(now);
    }

    pub fn last_cached_seq_no(&self) -> Option<SeqNo> {
        Some(self.packet_by_seq_no.last_position()?.into())
    }

    /// yunshi: the payload size of a cached packet, without rebuilding it.
    pub fn cached_payload_len(&self, seq_no: SeqNo) -> Option<usize> {
        self.packet_by_seq_no.get(*seq_no).map(|p| p.payload().len())
    }

    /// The cached packet, rebuilt for a resend. Changes to it are not kept.
    pub fn get_cached_packet_by_seq_no(&mut self, seq_no: SeqNo) -> Option<&mut RtpPacket> {
        let packet = self.packet_by_seq_no.get(*seq_no)?.to_packet(seq_no, self.ssrc);
        self.resend = packet;
        Some(&mut self.resend)
    }

    pub fn get_cached_packet_smaller_than(&mut self, max_size: usize) -> Option<&mut RtpPacket> {
        let quantized_size = max_size / RTX_CACHE_SIZE_QUANTIZER;

        let seq_no = self.seq_no_by_quantized_size[..quantized_size]
            .iter()
            .rev()
            .filter(|seq_no| !seq_no.is_max())
            .find(|seq_no| self.packet_by_seq_no.contains(***seq_no))?;

        self.get_cached_packet_by_seq_no(*seq_no)
    }

    fn remove_old_packets(&mut self, now: Instant) {
        self.packet_by_seq_no.maybe_evict(now);
    }

    pub(crate) fn last_packet(&self) -> Option<&[u8]> {
        let packet = self.packet_by_seq_no.last()?;
        Some(packet.payload().as_ref())
    }

    pub(crate) fn clear(&mut self) {
        self.packet_by_seq_no.clear();
        self.seq_no_by_quantized_size = [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS];
    }
}

#[cfg(test)]
mod test {
    use crate::rtp_::MediaTime;
    use crate::rtp_::RtpHeader;
    use crate::util::already_happened;

    use super::*;

    fn after(now: Instant, millis: u64) -> Instant {
        now + Duration::from_millis(millis)
    }

    fn packet(_now: Instant, seq_no: u64, millis: u64) -> RtpPacket {
        RtpPacket {
            header: RtpHeader {
                sequence_number: seq_no as u16,
                ..Default::default()
            },
            seq_no: seq_no.into(),
            time: MediaTime::from_90khz(0),
            payload: millis.to_be_bytes().into(),
            vp8_patch: None,
            // yunshi: the cache does not keep the enqueue time (only regular sends use it).
            timestamp: already_happened(),
            last_sender_info: None,
            nackable: true,
        }
    }

    // yunshi: what a resend needs survives the compact form, rare values included.
    #[test]
    fn rtx_cache_keeps_header_and_extensions() {
        use crate::rtp_::ExtensionValues;
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(3));
        let mut p = packet(now, 7, 10);
        p.header.marker = true;
        p.header.payload_type = 96.into();
        p.header.timestamp = 123_456;
        p.header.ssrc = 42.into();
        p.header.sequence_number = 7;
        p.header.ext_vals = ExtensionValues {
            audio_level: Some(-30),
            video_orientation: Some(crate::rtp_::VideoOrientation::Deg90),
            frame_mark: Some(5),
            abs_capture_time: Some(crate::rtp_::AbsCaptureTime {
                capture_time: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(9),
                clock_offset: Some(3),
            }),
            ..Default::default()
        };
        let mut q = packet(now, 8, 20);
        q.header.sequence_number = 8;
        q.header.ssrc = 42.into();
        q.header.csrc_count = 2;
        q.header.csrc[0] = 11;
        q.header.csrc[1] = 12;
        q.header.ext_vals.play_delay_min = Some(MediaTime::from_90khz(900));
        q.header.ext_vals.voice_activity = Some(false);
        let descriptor = crate::packet::Vp8Descriptor::parse(&[0x80, 0x80, 0x81, 0x20, 0x90])
            .expect("a VP8 descriptor with a 15-bit PictureID");
        q.vp8_patch = Some(descriptor.patch().picture_id(0x0234).build().unwrap());
        // The common case: a capture time without a clock offset is kept inline.
        let mut r = packet(now, 9, 30);
        r.header.sequence_number = 9;
        r.header.ssrc = 42.into();
        r.header.ext_vals.voice_activity = Some(true);
        r.header.ext_vals.abs_capture_time = Some(crate::rtp_::AbsCaptureTime {
            capture_time: std::time::SystemTime::UNIX_EPOCH + Duration::new(1_764_000_000, 123),
            clock_offset: None,
        });
        let (p_want, q_want, r_want) = (clone(&p), clone(&q), clone(&r));
        rtx_cache.cache_sent_packet(p, after(now, 10));
        rtx_cache.cache_sent_packet(q, after(now, 20));
        rtx_cache.cache_sent_packet(r, after(now, 30));
        assert_eq!(Some(&mut clone(&p_want)), rtx_cache.get_cached_packet_by_seq_no(7.into()));
        assert_eq!(Some(&mut clone(&q_want)), rtx_cache.get_cached_packet_by_seq_no(8.into()));
        let got = rtx_cache.get_cached_packet_by_seq_no(9.into()).unwrap();
        assert!(got.header.ext_vals.abs_capture_time.is_some());
        assert_eq!(&mut clone(&r_want), got);
        assert!(!rtx_cache.packet_by_seq_no.get(9).unwrap().has_rare());
        assert_eq!(Some(8), rtx_cache.cached_payload_len(7.into()));
    }

    fn clone(p: &RtpPacket) -> RtpPacket {
        RtpPacket {
            seq_no: p.seq_no,
            time: p.time,
            header: p.header.clone(),
            payload: p.payload.clone(),
            vp8_patch: p.vp8_patch,
            timestamp: p.timestamp,
            last_sender_info: None,
            nackable: p.nackable,
        }
    }

    #[test]
    fn compact_entry_is_small() {
        let size = std::mem::size_of::<CachedPacket>();
        assert!(size <= 24, "{size} bytes");
        let slot = EvictingBuffer::<CachedPacket>::slot_size();
        assert!(slot <= 32, "{slot} bytes a slot");
    }

    #[test]
    fn receivers_of_one_packet_share_its_body() {
        let now = Instant::now();
        let sent = packet(now, 1, 10);
        let copy_of = |p: &RtpPacket| RtpPacket {
            header: p.header.clone(),
            payload: p.payload.clone(),
            ..packet(now, 1, 10)
        };
        // One forwarded packet written to three receivers: each copy has its own sequence
        // number, RTP time and payload type, and the payload and media values are one.
        let copies: Vec<CachedPacket> = (0..3u16)
            .map(|i| {
                let mut p = copy_of(&sent);
                p.seq_no = (100 + i as u64).into();
                p.header.timestamp = 1000 + i as u32;
                p.header.payload_type = (96 + i as u8).into();
                CachedPacket::from_packet(p)
            })
            .collect();
        assert!(copies[0].shares_body_with(&copies[1]));
        assert!(copies[1].shares_body_with(&copies[2]));
        for (i, c) in copies.iter().enumerate() {
            let back = c.to_packet((100 + i as u64).into(), 7.into());
            assert_eq!(back.header.timestamp, 1000 + i as u32);
            assert_eq!(back.header.payload_type, (96 + i as u8).into());
            assert_eq!(back.payload, sent.payload);
            assert_eq!(back.header.ext_vals.audio_level, sent.header.ext_vals.audio_level);
        }

        // Another payload, or the same payload with other media values, is a body of its own.
        let other = CachedPacket::from_packet(packet(now, 2, 10));
        assert!(!other.shares_body_with(&copies[0]));
        let mut louder = copy_of(&sent);
        louder.header.ext_vals.audio_level = Some(-3);
        let louder = CachedPacket::from_packet(louder);
        assert!(!louder.shares_body_with(&copies[0]));
        assert_eq!(louder.to_packet(1.into(), 7.into()).header.ext_vals.audio_level, Some(-3));
    }

    #[test]
    fn rtx_cache_0_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(0, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_by_seq_no(1.into())
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(1000)
        );
    }

    #[test]
    fn rtx_cache_0_duration() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(0));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(1.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_smaller_than(1000));
    }

    #[test]
    fn rtx_cache_1_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(1, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_by_seq_no(1.into())
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(1000)
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(25)
        );
        assert_eq!(None, rtx_cache.get_cached_packet_smaller_than(24));
        rtx_cache.cache_sent_packet(packet(now, 2, 20), after(now, 20));
        assert_eq!(
            Some(&mut packet(now, 2, 20)),
            rtx_cache.get_cached_packet_by_seq_no(2.into())
        );
    }

    #[test]
    fn rtx_cache_100_sized_backwards() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(100, Duration::from_secs(3));

        for i in 1..=200 {
            let seq_no = 201 - i;
            let pkt = packet(now, seq_no, (201 - i) * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(
            Some(&mut packet(now, 200, 2000)),
            rtx_cache.get_cached_packet_by_seq_no(200.into())
        );
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(100.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(101.into()));
    }

    #[test]
    fn rtx_cache_eviction() {
        let now = Instant::now();
        // Cache can take all entries
        let mut rtx_cache = RtxCache::new(400, Duration::from_secs(1));
        for i in 1..=200 {
            let seq_no = i;
            let pkt = packet(now, seq_no, i * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(99.into()));

        assert_eq!(
            Some(&mut packet(now, 100, 1000)),
            rtx_cache.get_cached_packet_by_seq_no(100.into())
        );
        assert_eq!(
            Some(&mut packet(now, 200, 2000)),
            rtx_cache.get_cached_packet_by_seq_no(200.into())
        );
    }
}
