//! yunshi: the compact form of an outgoing packet, for the RTX cache and the send queue.

use std::sync::Arc;
use std::time::Duration;
use std::time::UNIX_EPOCH;

use crate::media::MediaTime;
use crate::packet::Vp8Patch;
use crate::rtp_::{AbsCaptureTime, ExtensionValues, Pt, RtpHeader, SeqNo, Ssrc};
use crate::rtp_::{UserExtensionValues, VideoOrientation};
use crate::util::already_happened;

use super::RtpPacket;

/// yunshi: a packet as the RTX cache and the send queue keep it.
///
/// A full [`RtpPacket`] is 384 bytes (the header's 15 CSRC slots and every extension
/// value inline), and a cache holds a second or more of a stream's packets for every
/// receiver: an SFU paid ~400 KB per forwarded 3 Mbit/s stream for it. This keeps what a
/// resend needs in 24 bytes (32 with the buffer's slot). Not kept: values a resend rewrites
/// anyway (MID/RID, send time, transport sequence); the sequence number, which is the buffer
/// position; the SSRC, which is the stream's (kept once per cache); and the extended media
/// time, which only a first send reads.
///
/// What is the same in every receiver's copy of a forwarded packet — the payload and the
/// extension values that describe the media — is one [`Body`] that all the copies share.
/// Only what an SFU rewrites per receiver (RTP time, payload type, marker, a VP8 patch)
/// stays in the entry.
pub(crate) struct CachedPacket {
    body: Arc<Body>,
    rtp_time: u32,
    /// Valid if [`flags::VP8_PATCH`] is set (an `Option` would take a tenth byte).
    vp8_patch: Vp8Patch,
    pt: Pt,
    /// The marker bit and whether there is a VP8 patch (see [`flags`]).
    flags: u8,
}

/// yunshi: the part of a compact packet that every receiver's copy of it shares. An SFU
/// writes a forwarded packet to each of its receivers in turn, so the body of the packet
/// just compacted on this thread is kept ([`LAST_BODY`]) and taken again when the next one
/// has the same payload and values: one body per forwarded packet instead of these 40
/// bytes in every receiver's send queue and RTX cache.
struct Body {
    payload: Arc<[u8]>,
    user_values: UserExtensionValues,
    /// Values that are rare on forwarded media, behind a box only allocated when present.
    rare: Option<Box<RareFields>>,
    /// abs-capture-time's capture instant, nanoseconds after the Unix epoch; 0 for none.
    /// A capture time before 1970 or with a clock offset is kept in `rare` instead.
    capture_nanos: u64,
    /// Valid if [`flags::AUDIO_LEVEL`] is set.
    audio_level: i8,
    /// Which of the audio values are present (see [`flags`]).
    flags: u8,
}

// A body is never changed once made (a resend copies out of it), so a panic cannot leave one
// half-written; the user values' `dyn Any` is what keeps the compiler from seeing that.
impl std::panic::RefUnwindSafe for Body {}
impl std::panic::UnwindSafe for Body {}

thread_local! {
    /// yunshi: the body of the packet last compacted on this thread (see [`Body`]).
    static LAST_BODY: std::cell::RefCell<Option<Arc<Body>>> = const { std::cell::RefCell::new(None) };
}

impl Body {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether a packet with these values can share this body. Only bodies without rare
    /// values are shared (they are compared by what they hold, and are rare).
    fn is_shared_by(
        &self,
        payload: &Arc<[u8]>,
        user_values: &UserExtensionValues,
        capture_nanos: u64,
        audio_level: i8,
        flags: u8,
    ) -> bool {
        self.rare.is_none()
            && Arc::ptr_eq(&self.payload, payload)
            && self.user_values.ptr_eq(user_values)
            && self.capture_nanos == capture_nanos
            && self.audio_level == audio_level
            && self.flags == flags
    }
}

/// yunshi: the bits of [`CachedPacket::flags`] (marker, VP8 patch) and [`Body::flags`] (the
/// presence of the audio level and voice activity).
mod flags {
    pub const MARKER: u8 = 1;
    pub const AUDIO_LEVEL: u8 = 2;
    pub const VOICE_ACTIVITY: u8 = 4;
    pub const VOICE_ACTIVE: u8 = 8;
    pub const VP8_PATCH: u8 = 16;
}

impl std::fmt::Debug for CachedPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedPacket")
            .field("rtp_time", &self.rtp_time)
            .field("payload", &self.body.payload.len())
            .finish()
    }
}

#[derive(Debug)]
struct RareFields {
    has_padding: bool,
    csrc_count: usize,
    csrc: [u32; 15],
    tx_time_offs: Option<u32>,
    play_delay_min: Option<MediaTime>,
    play_delay_max: Option<MediaTime>,
    video_timing: Option<crate::rtp_::VideoTiming>,
    video_orientation: Option<VideoOrientation>,
    video_content_type: Option<u8>,
    frame_mark: Option<u32>,
    abs_capture_time: Option<AbsCaptureTime>,
}

fn bit(on: bool, flag: u8) -> u8 {
    if on { flag } else { 0 }
}

/// The capture instant as [`CachedPacket::capture_nanos`] keeps it, if it can.
fn capture_nanos(t: &AbsCaptureTime) -> Option<u64> {
    if t.clock_offset.is_some() {
        return None;
    }
    let nanos = t.capture_time.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    u64::try_from(nanos).ok().filter(|n| *n != 0)
}

impl CachedPacket {
    pub(crate) fn from_packet(p: RtpPacket) -> Self {
        let h = p.header;
        let e = h.ext_vals;
        let inline_capture = e.abs_capture_time.as_ref().map(capture_nanos);
        let capture_is_rare = matches!(inline_capture, Some(None));
        let rare = (h.has_padding
            || h.csrc_count > 0
            || e.tx_time_offs.is_some()
            || e.play_delay_min.is_some()
            || e.play_delay_max.is_some()
            || e.video_timing.is_some()
            || e.video_orientation.is_some()
            || e.video_content_type.is_some()
            || e.frame_mark.is_some()
            || capture_is_rare)
            .then(|| {
                Box::new(RareFields {
                    has_padding: h.has_padding,
                    csrc_count: h.csrc_count,
                    csrc: h.csrc,
                    tx_time_offs: e.tx_time_offs,
                    play_delay_min: e.play_delay_min,
                    play_delay_max: e.play_delay_max,
                    video_timing: e.video_timing,
                    video_orientation: e.video_orientation,
                    video_content_type: e.video_content_type,
                    frame_mark: e.frame_mark,
                    abs_capture_time: if capture_is_rare {
                        e.abs_capture_time
                    } else {
                        None
                    },
                })
            });
        let capture_nanos = inline_capture.flatten().unwrap_or(0);
        let audio_level = e.audio_level.unwrap_or(0);
        let body_flags = bit(e.audio_level.is_some(), flags::AUDIO_LEVEL)
            | bit(e.voice_activity.is_some(), flags::VOICE_ACTIVITY)
            | bit(e.voice_activity == Some(true), flags::VOICE_ACTIVE);
        let body = match rare {
            Some(rare) => Arc::new(Body {
                payload: p.payload,
                user_values: e.user_values,
                rare: Some(rare),
                capture_nanos,
                audio_level,
                flags: body_flags,
            }),
            None => LAST_BODY.with(|last| {
                let mut last = last.borrow_mut();
                match &*last {
                    Some(b)
                        if b.is_shared_by(
                            &p.payload,
                            &e.user_values,
                            capture_nanos,
                            audio_level,
                            body_flags,
                        ) =>
                    {
                        b.clone()
                    }
                    _ => {
                        let b = Arc::new(Body {
                            payload: p.payload,
                            user_values: e.user_values,
                            rare: None,
                            capture_nanos,
                            audio_level,
                            flags: body_flags,
                        });
                        *last = Some(b.clone());
                        b
                    }
                }
            }),
        };
        CachedPacket {
            body,
            rtp_time: h.timestamp,
            vp8_patch: p.vp8_patch.unwrap_or_default(),
            pt: h.payload_type,
            flags: bit(h.marker, flags::MARKER) | bit(p.vp8_patch.is_some(), flags::VP8_PATCH),
        }
    }

    /// The shared payload.
    pub(crate) fn payload(&self) -> &Arc<[u8]> {
        &self.body.payload
    }

    /// Whether another compact packet shares this one's body.
    #[cfg(test)]
    pub(crate) fn shares_body_with(&self, other: &CachedPacket) -> bool {
        Arc::ptr_eq(&self.body, &other.body)
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether it needed the box of rare values.
    #[cfg(test)]
    pub(crate) fn has_rare(&self) -> bool {
        self.body.rare.is_some()
    }

    /// The packet as it was sent, less the values every resend sets afresh. Its `time` is
    /// zero (a resend does not read it).
    pub(crate) fn to_packet(&self, seq_no: SeqNo, ssrc: Ssrc) -> RtpPacket {
        let b = &*self.body;
        let abs_capture_time = (b.capture_nanos != 0).then(|| AbsCaptureTime {
            capture_time: UNIX_EPOCH + Duration::from_nanos(b.capture_nanos),
            clock_offset: None,
        });
        let mut header = RtpHeader {
            marker: self.has(flags::MARKER),
            payload_type: self.pt,
            sequence_number: *seq_no as u16,
            timestamp: self.rtp_time,
            ssrc,
            ext_vals: ExtensionValues {
                audio_level: b.has(flags::AUDIO_LEVEL).then_some(b.audio_level),
                voice_activity: b
                    .has(flags::VOICE_ACTIVITY)
                    .then(|| b.has(flags::VOICE_ACTIVE)),
                abs_capture_time,
                user_values: b.user_values.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        if let Some(r) = &b.rare {
            header.has_padding = r.has_padding;
            header.csrc_count = r.csrc_count;
            header.csrc = r.csrc;
            let e = &mut header.ext_vals;
            e.tx_time_offs = r.tx_time_offs;
            e.play_delay_min = r.play_delay_min;
            e.play_delay_max = r.play_delay_max;
            e.video_timing = r.video_timing;
            e.video_orientation = r.video_orientation;
            e.video_content_type = r.video_content_type;
            e.frame_mark = r.frame_mark;
            if r.abs_capture_time.is_some() {
                e.abs_capture_time = r.abs_capture_time;
            }
        }
        RtpPacket {
            seq_no,
            time: MediaTime::ZERO,
            header,
            payload: b.payload.clone(),
            vp8_patch: self.has(flags::VP8_PATCH).then_some(self.vp8_patch),
            timestamp: already_happened(),
            last_sender_info: None,
            nackable: true,
        }
    }
}
