//! Real encoded media for publishers, made once at start-up and shared by all of them: H.264
//! from OpenH264 (a moving test picture with noise, so the encoder works for its bits) and
//! Opus from libopus (a tone with a slow warble). Publishers loop over the encoded frames; a
//! keyframe request makes a layer jump to the next IDR, as a real encoder would send one.

use std::sync::Arc;
use std::time::Duration;

use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, UsageType};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;

/// One spatial layer (one simulcast encoding): its encoded frames in order.
#[derive(Debug, Clone)]
pub struct VideoLayer {
    pub width: u16,
    pub height: u16,
    pub frames: Vec<Arc<[u8]>>,
    /// Indices of IDR frames, ascending; the first is 0.
    pub idr: Vec<usize>,
}

impl VideoLayer {
    /// The IDR at or after `from`, wrapping to the first.
    pub fn next_idr(&self, from: usize) -> usize {
        self.idr.iter().copied().find(|&i| i >= from).unwrap_or(0)
    }

    pub fn bitrate_kbps(&self, fps: u32) -> f64 {
        let bytes: usize = self.frames.iter().map(|f| f.len()).sum();
        bytes as f64 * 8.0 * fps as f64 / self.frames.len().max(1) as f64 / 1000.0
    }
}

#[derive(Debug, Clone)]
pub struct VideoSpec {
    pub width: u16,
    pub height: u16,
    pub fps: u32,
    pub kbps: u32,
    /// Simulcast encodings, each half the size of the one above; 1 = a single stream.
    pub layers: u8,
    /// Seconds of frames encoded (then looped).
    pub seconds: u32,
    /// Frames between IDRs (inputs to the encoder; rate control may skip a few).
    pub gop: u32,
}

impl Default for VideoSpec {
    fn default() -> Self {
        VideoSpec { width: 1280, height: 720, fps: 30, kbps: 1500, layers: 1, seconds: 4, gop: 60 }
    }
}

/// Layers lowest first (the order RIDs q, h, f go in).
pub fn encode_video(spec: &VideoSpec) -> Result<Vec<VideoLayer>, String> {
    let mut layers = Vec::new();
    for l in (0..spec.layers.max(1)).rev() {
        let div = 1u32 << l;
        // Even sizes (4:2:0); bitrate shared roughly by area, as browsers split it.
        let w = ((spec.width as u32 / div) & !1).max(16);
        let h = ((spec.height as u32 / div) & !1).max(16);
        let kbps = (spec.kbps / (div * div)).max(100);
        layers.push(encode_layer(w, h, spec.fps, kbps, spec.seconds, spec.gop)?);
    }
    Ok(layers)
}

fn encode_layer(w: u32, h: u32, fps: u32, kbps: u32, seconds: u32, gop: u32) -> Result<VideoLayer, String> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(kbps * 1000))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .usage_type(UsageType::CameraVideoRealTime)
        .intra_frame_period(IntraFramePeriod::from_num_frames(gop.max(1)))
        // Without frame skipping OpenH264 does not control the rate at all (it says so).
        .skip_frames(true)
        // Scene-change detection took the synthetic picture's scrolling for cuts and put an
        // IDR every ~27 frames at 1080p (4 in a 107-frame clip), whatever the intra period:
        // each one a burst the SFU fans out to every viewer. Cameras and WebRTC publishers send
        // keyframes on a period or when asked, so the clip follows `gop` alone.
        .scene_change_detect(false);
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| format!("openh264: {e}"))?;
    let n = (seconds * fps).max(1) as usize;
    let mut frames = Vec::with_capacity(n);
    let mut idr = Vec::new();
    let mut yuv = vec![0u8; (w * h * 3 / 2) as usize];
    for i in 0..n {
        test_picture(&mut yuv, w as usize, h as usize, i);
        let buffer = YUVBuffer::from_vec(yuv.clone(), w as usize, h as usize);
        let encoded = encoder.encode(&buffer).map_err(|e| format!("openh264 frame {i}: {e}"))?;
        let data = encoded.to_vec();
        if data.is_empty() {
            continue; // skipped by rate control: the clip has a frame fewer
        }
        if crate::h264::annex_b_has_idr(&data) {
            idr.push(frames.len());
        }
        frames.push(Arc::from(data));
    }
    if idr.first() != Some(&0) {
        return Err("the first frame is not an IDR".into());
    }
    Ok(VideoLayer { width: w as u16, height: h as u16, frames, idr })
}

/// A picture that moves: a textured background scrolling two pixels a frame (so motion
/// compensation finds it, as in camera video) and a bright box crossing it. Texture gives the
/// encoder detail to spend its bits on; it is not fresh noise each frame, which no encoder can
/// predict and which made OpenH264 overshoot its rate threefold.
fn test_picture(yuv: &mut [u8], w: usize, h: usize, frame: usize) {
    let (luma, chroma) = yuv.split_at_mut(w * h);
    let bx = (frame * 7) % w.max(1);
    let shift = frame * 2;
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x + shift, y + shift / 2);
            // A triangle wave, not a sawtooth: no hard edge where it wraps.
            let phase = (sx + sy) % 512;
            let base = if phase < 256 { phase } else { 511 - phase } as u8;
            let mut seed = (sx as u32).wrapping_mul(0x9E37_79B1) ^ (sy as u32).wrapping_mul(0x85EB_CA6B);
            seed ^= seed >> 15;
            let texture = (seed & 15) as u8;
            let in_box = x >= bx && x < bx + w / 8 && y >= h / 3 && y < h / 3 + h / 8;
            luma[y * w + x] = if in_box { 235 } else { base.saturating_add(texture) };
        }
    }
    let (u, v) = chroma.split_at_mut(w * h / 4);
    for (i, (a, b)) in u.iter_mut().zip(v.iter_mut()).enumerate() {
        *a = (128 + ((i + frame) % 32)) as u8;
        *b = (128 - ((i / 7 + frame) % 32)) as u8;
    }
}

/// Opus frames of 20 ms, mono 48 kHz, looped by publishers.
#[derive(Debug, Clone)]
pub struct AudioClip {
    pub frames: Vec<Arc<[u8]>>,
}

pub const AUDIO_FRAME: Duration = Duration::from_millis(20);
pub const AUDIO_FRAME_SAMPLES: u32 = 960;

pub fn encode_audio(seconds: u32, kbps: u32) -> Result<AudioClip, String> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).map_err(|e| format!("opus: {e}"))?;
    enc.set_bitrate(opus::Bitrate::Bits(kbps as i32 * 1000)).map_err(|e| format!("opus: {e}"))?;
    let n = (seconds.max(1) * 50) as usize;
    let mut pcm = [0i16; AUDIO_FRAME_SAMPLES as usize];
    let mut out = [0u8; 1500];
    let mut frames = Vec::with_capacity(n);
    for f in 0..n {
        for (i, s) in pcm.iter_mut().enumerate() {
            let t = (f * AUDIO_FRAME_SAMPLES as usize + i) as f64 / 48_000.0;
            let freq = 440.0 + 60.0 * (t * 0.7 * std::f64::consts::TAU).sin();
            *s = (8_000.0 * (t * freq * std::f64::consts::TAU).sin()) as i16;
        }
        let len = enc.encode(&pcm, &mut out).map_err(|e| format!("opus frame {f}: {e}"))?;
        frames.push(Arc::from(&out[..len]));
    }
    Ok(AudioClip { frames })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264;

    #[test]
    fn encodes_simulcast_layers_whose_sps_states_their_size() {
        let spec = VideoSpec { width: 640, height: 360, fps: 15, kbps: 600, layers: 2, seconds: 1, gop: 5 };
        let layers = encode_video(&spec).unwrap();
        assert_eq!(layers.iter().map(|l| (l.width, l.height)).collect::<Vec<_>>(), vec![(320, 180), (640, 360)]);
        for l in &layers {
            // Rate control may skip a frame or two; IDRs come every 5 encoded inputs.
            assert!((10..=15).contains(&l.frames.len()), "{} frames", l.frames.len());
            assert!(l.idr.len() >= 2 && l.idr[0] == 0, "IDRs at {:?}", l.idr);
            for (i, f) in l.frames.iter().enumerate() {
                assert_eq!(h264::annex_b_has_idr(f), l.idr.contains(&i), "frame {i}");
            }
            let (second, last) = (l.idr[1], *l.idr.last().unwrap());
            assert_eq!(l.next_idr(1), second);
            assert_eq!(l.next_idr(second), second);
            assert_eq!(l.next_idr(last + 1), 0);
            // The SPS in the first frame (Annex B) gives the encoded size, crop included.
            let sps = h264::annex_b_units(&l.frames[0]).find(|u| u[0] & 0x1f == 7).unwrap();
            assert_eq!(h264::sps_resolution(&sps[1..]), Some((l.width, l.height)));
            assert!(!h264::annex_b_has_idr(&l.frames[1]));
        }
        assert!(layers[1].bitrate_kbps(15) > 100.0, "{}", layers[1].bitrate_kbps(15));
    }

    #[test]
    fn idrs_come_on_the_period_and_only_then() {
        // A moving, scrolling picture: with scene-change detection on, this clip had IDRs at
        // frames 0, 40, 72 and 96 of 106 (at 640x360 the detector happens not to fire).
        let spec = VideoSpec { width: 1280, height: 720, fps: 30, kbps: 1500, layers: 1, seconds: 4, gop: 40 };
        let l = &encode_video(&spec).unwrap()[0];
        assert!(l.frames.len() > 100, "{} frames", l.frames.len());
        assert_eq!(l.idr.len(), 3, "IDRs at {:?} of {} frames", l.idr, l.frames.len());
        for pair in l.idr.windows(2) {
            // Frames skipped by rate control shorten a period by as many.
            assert!((34..=40).contains(&(pair[1] - pair[0])), "IDRs at {:?}", l.idr);
        }
    }

    #[test]
    fn encodes_opus_frames() {
        let clip = encode_audio(1, 32).unwrap();
        assert_eq!(clip.frames.len(), 50);
        let avg = clip.frames.iter().map(|f| f.len()).sum::<usize>() / 50;
        // 32 kbps at 50 frames/s is 80 bytes a frame; VBR stays near it.
        assert!((40..=120).contains(&avg), "average Opus frame {avg} bytes");
    }
}
