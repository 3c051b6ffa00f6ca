//! Totals over a measuring period, the summary table and the JSON result.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use str0m::media::MediaKind;

use crate::histogram::Histogram;
use crate::worker::Snapshot;

#[derive(Clone, Default)]
pub struct Totals {
    pub seconds: f64,
    pub publishers: usize,
    pub subscribers: usize,
    pub connected: usize,
    pub failed: usize,
    pub failures: Vec<String>,
    /// Video streams arriving at subscribers (one per subscriber per publisher it receives).
    pub video_streams: usize,
    pub video_packets: u64,
    pub video_lost: u64,
    pub video_bytes: u64,
    pub audio_packets: u64,
    pub audio_lost: u64,
    pub audio_bytes: u64,
    pub jitter_max: Duration,
    pub jitter_sum: Duration,
    pub jitter_n: u32,
    /// Signalling start → first keyframe, per subscriber that got one.
    pub join: Vec<Duration>,
    pub join_missing: usize,
    pub resolutions: BTreeMap<String, usize>,
    pub frames_sent: u64,
    pub keyframe_requests: u64,
    pub send_errors: u64,
    pub latency_video: Histogram,
    pub latency_audio: Histogram,
    pub unstamped: u64,
    pub video_over_fastest: Histogram,
    pub tool_cpu: Duration,
    pub server_cpu: Option<Duration>,
    pub server_rss: Option<u64>,
}

fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!((d.as_secs_f64() * 1e5).round() / 100.0))
}

fn pct(lost: u64, received: u64) -> f64 {
    if lost + received == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / (lost + received) as f64
    }
}

pub fn quantile(v: &[Duration], q: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[i])
}

impl Totals {
    /// p99 video latency: from capture times where the server carries them, else the delay
    /// over each stream's fastest packet.
    pub fn video_p99(&self) -> Option<Duration> {
        if self.latency_video.count() > 0 {
            self.latency_video.quantile(0.99)
        } else {
            self.video_over_fastest.quantile(0.99)
        }
    }

    pub fn from_snapshot(s: &Snapshot) -> Totals {
        let mut t = Totals { tool_cpu: s.cpu, ..Default::default() };
        for p in &s.peers {
            if p.publisher {
                t.publishers += 1;
            } else {
                t.subscribers += 1;
            }
            if p.connected {
                t.connected += 1;
            }
            if let Some(f) = &p.failed {
                t.failed += 1;
                if t.failures.len() < 5 {
                    t.failures.push(f.clone());
                }
            }
            t.frames_sent += p.frames_sent;
            t.keyframe_requests += p.keyframe_requests;
            t.send_errors += p.send_errors;
            if !p.publisher {
                match p.first_keyframe {
                    Some(d) => t.join.push(d),
                    None => t.join_missing += 1,
                }
            }
            for st in &p.streams {
                match st.kind {
                    MediaKind::Audio => {
                        t.audio_packets += st.received;
                        t.audio_lost += st.lost;
                        t.audio_bytes += st.bytes;
                    }
                    MediaKind::Video => {
                        t.video_streams += 1;
                        t.video_packets += st.received;
                        t.video_lost += st.lost;
                        t.video_bytes += st.bytes;
                        if let Some((w, h)) = st.resolution {
                            *t.resolutions.entry(format!("{w}x{h}")).or_default() += 1;
                        }
                    }
                }
                t.jitter_max = t.jitter_max.max(st.jitter);
                t.jitter_sum += st.jitter;
                t.jitter_n += 1;
            }
        }
        t
    }

    /// Counters over the period since `base` (levels such as peers and joins stay as now).
    pub fn since(mut self, base: &Totals) -> Totals {
        self.video_packets = self.video_packets.saturating_sub(base.video_packets);
        self.video_lost = self.video_lost.saturating_sub(base.video_lost);
        self.video_bytes = self.video_bytes.saturating_sub(base.video_bytes);
        self.audio_packets = self.audio_packets.saturating_sub(base.audio_packets);
        self.audio_lost = self.audio_lost.saturating_sub(base.audio_lost);
        self.audio_bytes = self.audio_bytes.saturating_sub(base.audio_bytes);
        self.frames_sent = self.frames_sent.saturating_sub(base.frames_sent);
        self.keyframe_requests = self.keyframe_requests.saturating_sub(base.keyframe_requests);
        self.send_errors = self.send_errors.saturating_sub(base.send_errors);
        self.tool_cpu = self.tool_cpu.saturating_sub(base.tool_cpu);
        self
    }

    pub fn packets(&self) -> u64 {
        self.video_packets + self.audio_packets
    }

    pub fn loss_pct(&self) -> f64 {
        pct(self.video_lost + self.audio_lost, self.packets())
    }

    pub fn packets_per_s(&self) -> f64 {
        self.packets() as f64 / self.seconds.max(1e-9)
    }

    /// Server CPU time per packet that reached a subscriber, in µs.
    pub fn server_us_per_packet(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.packets() > 0).then(|| cpu.as_secs_f64() * 1e6 / self.packets() as f64)
    }

    /// Share of one core the server used.
    pub fn server_core_share(&self) -> Option<f64> {
        Some(self.server_cpu?.as_secs_f64() / self.seconds.max(1e-9))
    }

    pub fn progress_line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        format!(
            "peers {}/{} up{}  in {:.0} pkt/s  {:.1} Mbit/s  loss {:.3} %",
            self.connected,
            self.publishers + self.subscribers,
            if self.failed > 0 { format!(" ({} failed)", self.failed) } else { String::new() },
            self.packets() as f64 / secs,
            (self.video_bytes + self.audio_bytes) as f64 * 8.0 / secs / 1e6,
            self.loss_pct(),
        )
    }

    pub fn to_json(&self) -> Value {
        let lat = |h: &Histogram| json!({ "p50": ms(h.quantile(0.5)), "p99": ms(h.quantile(0.99)), "max": ms(h.max()), "samples": h.count() });
        json!({
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "publishers": self.publishers,
            "subscribers": self.subscribers,
            "connected": self.connected,
            "failed": self.failed,
            "failures": self.failures,
            "video_streams": self.video_streams,
            "packets": { "video": self.video_packets, "audio": self.audio_packets, "per_s": self.packets_per_s().round() },
            "lost": { "video": self.video_lost, "audio": self.audio_lost, "pct": self.loss_pct() },
            "mbit_per_s": ((self.video_bytes + self.audio_bytes) as f64 * 8.0 / self.seconds.max(1e-9) / 1e4).round() / 100.0,
            "latency_ms": {
                "video": lat(&self.latency_video),
                "audio": lat(&self.latency_audio),
                "unstamped": self.unstamped,
                "video_over_fastest": lat(&self.video_over_fastest),
            },
            "jitter_ms": { "max": ms(Some(self.jitter_max)), "mean": ms((self.jitter_n > 0).then(|| self.jitter_sum / self.jitter_n)) },
            "join_ms": { "p50": ms(quantile(&self.join, 0.5)), "p99": ms(quantile(&self.join, 0.99)), "max": ms(quantile(&self.join, 1.0)), "without_keyframe": self.join_missing },
            "resolutions": self.resolutions,
            "frames_sent": self.frames_sent,
            "keyframe_requests": self.keyframe_requests,
            "send_errors": self.send_errors,
            "tool_cpu_s": self.tool_cpu.as_secs_f64(),
            "server": {
                "cpu_s": self.server_cpu.map(|c| c.as_secs_f64()),
                "core_share": self.server_core_share(),
                "us_per_packet": self.server_us_per_packet(),
                "rss_bytes": self.server_rss,
            },
        })
    }

    pub fn table(&self) -> String {
        let d = |x: Option<Duration>| x.map_or("-".to_string(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3));
        let mut rows: Vec<(String, String)> = vec![
            (
                "endpoints".into(),
                format!(
                    "{} publishers, {} subscribers, {} connected, {} failed",
                    self.publishers, self.subscribers, self.connected, self.failed
                ),
            ),
            ("video streams received".into(), self.video_streams.to_string()),
            (
                "packets received".into(),
                format!("{} video + {} audio = {:.0}/s", self.video_packets, self.audio_packets, self.packets_per_s()),
            ),
            (
                "throughput".into(),
                format!(
                    "{:.2} Mbit/s",
                    (self.video_bytes + self.audio_bytes) as f64 * 8.0 / self.seconds.max(1e-9) / 1e6
                ),
            ),
            (
                "loss".into(),
                format!("{:.3} % (video {}, audio {} packets)", self.loss_pct(), self.video_lost, self.audio_lost),
            ),
            (
                "latency video p50/p99/max".into(),
                format!(
                    "{} / {} / {}",
                    d(self.latency_video.quantile(0.5)),
                    d(self.latency_video.quantile(0.99)),
                    d(self.latency_video.max())
                ),
            ),
            (
                "latency audio p50/p99/max".into(),
                format!(
                    "{} / {} / {}",
                    d(self.latency_audio.quantile(0.5)),
                    d(self.latency_audio.quantile(0.99)),
                    d(self.latency_audio.max())
                ),
            ),
            (
                "video delay over fastest p50/p99".into(),
                format!("{} / {}", d(self.video_over_fastest.quantile(0.5)), d(self.video_over_fastest.quantile(0.99))),
            ),
            ("jitter max".into(), d(Some(self.jitter_max))),
            (
                "join → first keyframe p50/p99".into(),
                format!(
                    "{} / {} ({} without)",
                    d(quantile(&self.join, 0.5)),
                    d(quantile(&self.join, 0.99)),
                    self.join_missing
                ),
            ),
            ("resolutions received".into(), format!("{:?}", self.resolutions)),
            ("tool CPU".into(), format!("{:.2} s", self.tool_cpu.as_secs_f64())),
        ];
        if let Some(c) = self.server_cpu {
            rows.push((
                "server CPU".into(),
                format!(
                    "{:.2} s = {:.1} % of a core",
                    c.as_secs_f64(),
                    self.server_core_share().unwrap_or(0.0) * 100.0
                ),
            ));
            if let Some(us) = self.server_us_per_packet() {
                rows.push(("server CPU per packet".into(), format!("{us:.2} µs")));
            }
        }
        if let Some(rss) = self.server_rss {
            rows.push(("server memory (RSS)".into(), format!("{:.1} MB", rss as f64 / 1e6)));
        }
        if !self.failures.is_empty() {
            rows.push(("failures".into(), self.failures.join("; ")));
        }
        let w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        rows.iter().map(|(k, v)| format!("  {k:<w$}  {v}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_of_durations() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&v, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(pct(1, 999), 0.1);
        assert_eq!(pct(0, 0), 0.0);
    }
}
