//! `cascade`: what each hop of a cascaded conference adds. Venues publish at the bottom node;
//! viewers then watch from each level in turn (bottom, one hop up, two hops up …), one level
//! at a time so each measurement holds that level's latency only. Every node's CPU is read
//! from /proc over each phase: the middle nodes' share is what relaying costs.

use std::time::Duration;

use serde_json::json;

use crate::proc_stat;
use crate::report::Totals;
use crate::scenario::Harness;
use crate::server::{Server, Session};

pub struct Level {
    /// The node's API address (for the table).
    pub url: String,
    pub server: Box<dyn Server>,
    /// The node's process id, for its CPU time.
    pub pid: Option<u32>,
}

pub struct Phase {
    pub hops: usize,
    pub url: String,
    pub totals: Totals,
    /// CPU share of each node's core over the phase, bottom first.
    pub node_core: Vec<Option<f64>>,
    /// RTP payload each node sent over the phase, Mbit/s, bottom first: below the viewers'
    /// level that is its link upwards.
    pub node_out_mbps: Vec<Option<f64>>,
}

pub struct CascadeRun {
    pub venues: usize,
    /// Venues published at every level, not only the bottom one.
    pub every_level: bool,
    pub viewers: usize,
    /// The viewers' player height, told to the server (None: full size).
    pub viewer_height: Option<u16>,
    /// Before any viewer: what the links alone cost (each venue crosses each link once).
    pub idle_node_core: Vec<Option<f64>>,
    /// Before any viewer: RTP payload each node sends, Mbit/s (its link upwards: nothing
    /// else watches yet).
    pub idle_node_out_mbps: Vec<Option<f64>>,
    pub phases: Vec<Phase>,
}

fn cpu_shares(levels: &[Level], during: Duration, run: impl FnOnce()) -> Vec<Option<f64>> {
    let before: Vec<_> = levels.iter().map(|l| l.pid.and_then(proc_stat::process_cpu)).collect();
    run();
    levels
        .iter()
        .zip(before)
        .map(|(l, b)| {
            let (b, a) = (b?, l.pid.and_then(proc_stat::process_cpu)?);
            Some(a.saturating_sub(b).as_secs_f64() / during.as_secs_f64())
        })
        .collect()
}

/// `venues` publish at the bottom level; with `every_level`, as many again at each level above
/// (after the bottom ones, so that each room's main stream, which the viewers watch, is still
/// the bottom venue that crossed the links).
#[allow(clippy::too_many_arguments)]
pub fn run(
    h: &mut Harness,
    levels: &mut [Level],
    room: &str,
    venues: usize,
    every_level: bool,
    viewers: usize,
    viewer_height: Option<u16>,
    warmup: Duration,
    duration: Duration,
) -> Result<CascadeRun, String> {
    if levels.len() < 2 {
        return Err("a cascade needs two levels or more (--levels bottom,…,top)".into());
    }
    for l in levels.iter_mut() {
        l.server.prepare_room(room)?;
    }
    // The venues publish at the bottom node.
    let mut publishers: Vec<(usize, u64, Session)> = Vec::new();
    let upper = if every_level { levels.len() } else { 1 };
    for (level, node) in levels.iter_mut().enumerate().take(upper) {
        let mut keys = Vec::new();
        for _ in 0..venues {
            let (peer, session) = node.server.publisher(room, h.media.clone(), h.bind)?;
            let key = h.key();
            h.add(key, peer);
            publishers.push((level, key, session));
            keys.push(key);
        }
        h.wait_connected(&keys, Duration::from_secs(15))?;
        // Let the rooms join upwards along the tree before the next level's venues.
        std::thread::sleep(warmup.max(Duration::from_secs(3)));
    }
    let out0: Vec<_> = levels.iter().map(|l| bytes_out(&l.url)).collect();
    let idle_node_core = cpu_shares(levels, duration, || std::thread::sleep(duration));
    let idle_node_out_mbps = levels
        .iter()
        .zip(out0)
        .map(|(l, b)| Some((bytes_out(&l.url)? - b?) * 8.0 / duration.as_secs_f64() / 1e6))
        .collect();

    let mut phases = Vec::new();
    for hops in 0..levels.len() {
        let mut watching: Vec<(u64, Session)> = Vec::new();
        for _ in 0..viewers {
            let (peer, session) = levels[hops].server.viewer(room, h.red, h.bind)?;
            if let Some(height) = viewer_height {
                levels[hops].server.set_viewer_height(&session, height)?;
            }
            let key = h.key();
            h.add(key, peer);
            watching.push((key, session));
        }
        let keys: Vec<u64> = watching.iter().map(|w| w.0).collect();
        h.wait_connected(&keys, Duration::from_secs(15))?;
        std::thread::sleep(warmup);
        let label = format!("{hops} hop(s) up");
        let mut totals = None;
        let out0: Vec<_> = levels.iter().map(|l| bytes_out(&l.url)).collect();
        let node_core = cpu_shares(levels, duration, || totals = Some(h.measure(duration, &label)));
        let node_out_mbps = levels
            .iter()
            .zip(out0)
            .map(|(l, b)| Some((bytes_out(&l.url)? - b?) * 8.0 / duration.as_secs_f64() / 1e6))
            .collect();
        for (key, session) in &watching {
            levels[hops].server.end(session);
            h.remove(*key);
        }
        phases.push(Phase {
            hops,
            url: levels[hops].url.clone(),
            totals: totals.expect("measured"),
            node_core,
            node_out_mbps,
        });
    }
    for (level, key, session) in &publishers {
        levels[*level].server.end(session);
        h.remove(*key);
    }
    Ok(CascadeRun { venues, every_level, viewers, viewer_height, idle_node_core, idle_node_out_mbps, phases })
}

/// RTP payload bytes a yunshi node has sent (its /metrics; public by default).
fn bytes_out(url: &str) -> Option<f64> {
    let r = crate::http::request(url, "GET", "/metrics", None, None, b"").ok()?;
    let text = String::from_utf8_lossy(&r.body).to_string();
    Some(
        text.lines()
            .filter(|l| l.starts_with("yunshi_bytes_total{direction=\"out\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

fn mbps(v: &[Option<f64>]) -> String {
    v.iter().map(|m| m.map_or("-".into(), |m| format!("{m:.2}"))).collect::<Vec<_>>().join(" / ")
}

fn pct(v: &[Option<f64>]) -> String {
    v.iter().map(|c| c.map_or("-".into(), |c| format!("{:.1}", c * 100.0))).collect::<Vec<_>>().join(" / ")
}

impl CascadeRun {
    pub fn table(&self) -> String {
        let at = if self.every_level { "at every level" } else { "at the bottom" };
        let size = self.viewer_height.map_or("full-size".to_string(), |h| format!("{h}-px"));
        let mut s = format!(
            "cascade: {} venue(s) publishing {at}, {} {size} viewer(s) at one level at a time (watching the bottom's main venue)\n",
            self.venues, self.viewers
        );
        s += &format!(
            "  no viewers: node cores % (bottom first) {}; sent upwards Mbit/s {}\n",
            pct(&self.idle_node_core),
            mbps(&self.idle_node_out_mbps)
        );
        s += "  hops  video pkts  loss %   p50 ms   p99 ms   added p50/p99 ms   node cores % (bottom first)   sent Mbit/s (bottom first)\n";
        let base =
            self.phases.first().map(|p| (p.totals.latency_video.quantile(0.5), p.totals.latency_video.quantile(0.99)));
        for p in &self.phases {
            let (p50, p99) = (p.totals.latency_video.quantile(0.5), p.totals.latency_video.quantile(0.99));
            let added = match base {
                Some((Some(b50), Some(b99))) if p.hops > 0 => {
                    format!("{} / {}", ms(p50.map(|v| v.saturating_sub(b50))), ms(p99.map(|v| v.saturating_sub(b99))))
                }
                _ => "-".into(),
            };
            s += &format!(
                "  {:>4}  {:>10}  {:>6.3}  {:>7}  {:>7}  {:>17}   {:<27}   {}\n",
                p.hops,
                p.totals.video_packets,
                p.totals.loss_pct(),
                ms(p50),
                ms(p99),
                added,
                pct(&p.node_core),
                mbps(&p.node_out_mbps)
            );
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "venues": self.venues,
            "every_level": self.every_level,
            "viewers": self.viewers,
            "viewer_height": self.viewer_height,
            "idle_node_core": self.idle_node_core,
            "idle_node_out_mbps": self.idle_node_out_mbps,
            "phases": self.phases.iter().map(|p| json!({
                "hops": p.hops,
                "url": p.url,
                "node_core": p.node_core,
                "node_out_mbps": p.node_out_mbps,
                "totals": p.totals.to_json(),
            })).collect::<Vec<_>>(),
        })
    }
}
