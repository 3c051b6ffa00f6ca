//! `ramp`: a webinar that grows by a step of viewers at a time until the server stops keeping
//! up (loss or p99 latency over its limit, or endpoints failing), or a ceiling is reached.
//! Each step is measured on its own, so the result is a curve: load against CPU, loss, latency.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::plot::{Panel, Series};
use crate::report::Totals;
use crate::scenario::webinar::Webinar;
use crate::scenario::Harness;
use crate::server::Server;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub loss_pct: f64,
    pub p99: Duration,
}

pub struct Step {
    pub viewers: usize,
    pub totals: Totals,
    /// A publisher joining under this load: WHIP POST → first keyframe at each of the viewers
    /// already waiting in its room (the join figure). Empty where the server cannot
    /// take viewers before the publisher (Janus).
    pub publisher_join: Vec<Duration>,
}

/// Viewers waiting in the probe room when its publisher joins.
const PROBE_VIEWERS: usize = 5;

/// Under the current load: open a room, let `PROBE_VIEWERS` viewers wait in it, then publish
/// and time WHIP POST → each viewer's first keyframe. The room is closed again afterwards.
fn probe_publisher_join(h: &mut Harness, server: &mut dyn Server, room: &str) -> Result<Vec<Duration>, String> {
    server.prepare_room(room)?;
    let mut viewers = Vec::new();
    for _ in 0..PROBE_VIEWERS {
        let (peer, session) = server.viewer(room, h.red, h.bind)?;
        let key = h.key();
        h.add(key, peer);
        viewers.push((key, session));
    }
    let keys: Vec<u64> = viewers.iter().map(|(k, _)| *k).collect();
    let result = h.wait_connected(&keys, Duration::from_secs(10)).and_then(|()| {
        let posted = Instant::now();
        let (peer, session) = server.publisher(room, h.media.clone(), h.bind)?;
        let key = h.key();
        h.add(key, peer);
        viewers.push((key, session));
        let deadline = posted + Duration::from_secs(5);
        loop {
            let snap = h.snapshot(false);
            let got: Vec<Duration> = snap
                .peers
                .iter()
                .filter(|p| keys.contains(&p.key))
                .filter_map(|p| p.first_keyframe_at.map(|t| t.saturating_duration_since(posted)))
                .collect();
            if got.len() == keys.len() || Instant::now() > deadline {
                return Ok(got);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    for (key, session) in &viewers {
        server.end(session);
        h.remove(*key);
    }
    result
}

pub struct Ramp {
    pub limits: Limits,
    pub rooms: usize,
    pub steps: Vec<Step>,
    /// Why it stopped.
    pub stopped: String,
}

impl Step {
    /// From capture times, or (a server that drops abs-capture-time) over the fastest packet.
    fn p99(&self) -> Option<Duration> {
        self.totals.video_p99()
    }

    fn within(&self, l: &Limits) -> bool {
        self.totals.failed == 0 && self.totals.loss_pct() < l.loss_pct && self.p99().is_some_and(|p| p <= l.p99)
    }
}

/// `rooms` webinars (a publisher each) share the viewers, added round-robin: one publisher's
/// frame fanned out to everyone is a burst whose tail is latency, as on any SFU; many rooms
/// are what a loaded server carries.
pub fn run(
    h: &mut Harness,
    server: &mut dyn Server,
    rooms: usize,
    step: usize,
    max: usize,
    step_time: Duration,
    limits: Limits,
) -> Result<Ramp, String> {
    let mut webinars = Vec::new();
    for i in 0..rooms.max(1) {
        webinars.push(Webinar::start(h, server, &format!("loadtest-ramp-{i}"), 0)?);
    }
    let viewers = |ws: &[Webinar]| ws.iter().map(|w| w.viewers.len()).sum::<usize>();
    let mut r = Ramp { limits, rooms: webinars.len(), steps: Vec::new(), stopped: format!("reached --max {max}") };
    'ramp: while viewers(&webinars) < max {
        let n = step.min(max - viewers(&webinars));
        let count = webinars.len();
        for i in 0..count {
            let share = n / count + usize::from(i < n % count);
            if let Err(e) = webinars[i].add_viewers(h, server, share) {
                r.stopped = format!("joining failed at {} viewers: {e}", viewers(&webinars));
                break 'ramp;
            }
        }
        // Let joins settle (keyframes, first NACK rounds) before measuring the step.
        std::thread::sleep(Duration::from_secs(1));
        let total = viewers(&webinars);
        let totals = h.measure(step_time, &format!("ramp ({}) {total:>5} viewers", server.name()));
        let publisher_join = if server.name() == "janus" {
            Vec::new()
        } else {
            probe_publisher_join(h, server, &format!("loadtest-ramp-probe-{total}"))?
        };
        let s = Step { viewers: total, totals, publisher_join };
        let ok = s.within(&limits);
        r.steps.push(s);
        if !ok {
            r.stopped = format!("limit passed at {total} viewers");
            break;
        }
    }
    for w in webinars {
        w.end(h, server);
    }
    Ok(r)
}

impl Ramp {
    /// The most viewers measured within the limits.
    pub fn capacity(&self) -> Option<&Step> {
        self.steps.iter().filter(|s| s.within(&self.limits)).max_by_key(|s| s.viewers)
    }

    pub fn table(&self) -> String {
        let mut out = format!("ramp: {} room(s) with a publisher each, viewers added in steps\n", self.rooms);
        out.push_str(
            "  viewers  pkt/s out  loss %   p50 ms   p99 ms  join p99 ms  server core %  µs/pkt  tool core %\n",
        );
        for s in &self.steps {
            let t = &s.totals;
            let f = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
            out.push_str(&format!(
                "  {:>7}  {:>9.0}  {:>6.3}  {:>7}  {:>7}  {:>11}  {:>21}  {:>13}  {:>6}  {:>11.1}\n",
                s.viewers,
                t.packets_per_s(),
                t.loss_pct(),
                f(t.latency_video.quantile(0.5)),
                f(s.p99()),
                f(crate::report::quantile(&t.join, 0.99)),
                f(s.publisher_join.iter().max().copied()),
                t.server_core_share().map_or("-".into(), |c| format!("{:.1}", c * 100.0)),
                t.server_us_per_packet().map_or("-".into(), |u| format!("{u:.2}")),
                t.tool_cpu.as_secs_f64() * 100.0 / t.seconds.max(1e-9),
            ));
        }
        match self.capacity() {
            Some(s) => out.push_str(&format!(
                "  capacity within loss < {} % and p99 ≤ {:?}: {} viewers, {:.0} packets/s ({})\n",
                self.limits.loss_pct,
                self.limits.p99,
                s.viewers,
                s.totals.packets_per_s(),
                self.stopped
            )),
            None => out.push_str(&format!("  no step within the limits ({})\n", self.stopped)),
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rooms": self.rooms,
            "limits": { "loss_pct": self.limits.loss_pct, "p99_ms": self.limits.p99.as_secs_f64() * 1e3 },
            "stopped": self.stopped,
            "capacity_viewers": self.capacity().map(|s| s.viewers),
            "capacity_packets_per_s": self.capacity().map(|s| s.totals.packets_per_s().round()),
            "steps": self
                .steps
                .iter()
                .map(|s| {
                    json!({
                        "viewers": s.viewers,
                        "totals": s.totals.to_json(),
                        "publisher_join_ms": s.publisher_join.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        })
    }
}

/// The ramp's curves, one series per ramp (so several servers can share a plot).
pub fn panels(ramps: &[(&str, &Ramp)]) -> Vec<Panel> {
    let series = |f: &dyn Fn(&Step) -> Option<f64>| -> Vec<Series> {
        ramps
            .iter()
            .map(|(name, r)| Series {
                name: name.to_string(),
                points: r.steps.iter().filter_map(|s| f(s).map(|y| (s.viewers as f64, y))).collect(),
            })
            .collect()
    };
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    vec![
        Panel { title: "packets/s delivered to viewers".into(), series: series(&|s| Some(s.totals.packets_per_s())) },
        Panel {
            title: "server CPU, % of one core".into(),
            series: series(&|s| s.totals.server_core_share().map(|c| c * 100.0)),
        },
        Panel { title: "loss at viewers, %".into(), series: series(&|s| Some(s.totals.loss_pct())) },
        Panel {
            title: "video delay over each stream's fastest packet, p99, ms".into(),
            series: series(&|s| ms(s.totals.video_over_fastest.quantile(0.99))),
        },
    ]
}

pub fn plot(r: &Ramp, png: &std::path::Path) -> Result<(), String> {
    crate::plot::write_png(png, "yunshi-loadtest ramp", "viewers", &panels(&[("server", r)]))
}

/// Plot ramp results read back from their JSON (`{"params": {"kind"}, "result": {"steps"}}`),
/// one series per file, named by the server kind.
pub fn plot_results(results: &[Value], png: &std::path::Path, title: &str) -> Result<(), String> {
    let f = |v: &Value, path: &[&str]| path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64);
    let panel = |title: &str, path: &[&str], scale: f64| Panel {
        title: title.into(),
        series: results
            .iter()
            .map(|r| Series {
                name: r["params"]["kind"].as_str().unwrap_or("server").to_string(),
                points: r["result"]["steps"]
                    .as_array()
                    .map(|steps| {
                        steps
                            .iter()
                            .filter_map(|s| Some((s["viewers"].as_f64()?, f(&s["totals"], path)? * scale)))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
    };
    let panels = vec![
        panel("packets/s delivered to viewers", &["packets", "per_s"], 1.0),
        panel("server CPU, % of one core", &["server", "core_share"], 100.0),
        panel("loss at viewers, %", &["lost", "pct"], 1.0),
        panel(
            "video delay over each stream's fastest packet, p99, ms",
            &["latency_ms", "video_over_fastest", "p99"],
            1.0,
        ),
    ];
    if panels.iter().all(|p| p.series.iter().all(|s| s.points.is_empty())) {
        return Err("no ramp steps in the inputs".into());
    }
    crate::plot::write_png(png, title, "viewers", &panels)
}
