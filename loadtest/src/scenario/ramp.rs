//! `ramp`: a webinar that grows by a step of viewers at a time until the server stops keeping
//! up (loss or p99 latency over its limit, or endpoints failing), or a ceiling is reached.
//! Each step is measured on its own, so the result is a curve: load against CPU, loss, latency.

use std::time::Duration;

use serde_json::{json, Value};

use crate::plot::{Panel, Series};
use crate::report::Totals;
use crate::scenario::webinar::Webinar;
use crate::scenario::Harness;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub loss_pct: f64,
    pub p99: Duration,
}

pub struct Step {
    pub viewers: usize,
    pub totals: Totals,
}

pub struct Ramp {
    pub limits: Limits,
    pub steps: Vec<Step>,
    /// Why it stopped.
    pub stopped: String,
}

impl Step {
    fn p99(&self) -> Option<Duration> {
        self.totals.latency_video.quantile(0.99)
    }

    fn within(&self, l: &Limits) -> bool {
        self.totals.failed == 0 && self.totals.loss_pct() < l.loss_pct && self.p99().is_some_and(|p| p <= l.p99)
    }
}

pub fn run(h: &mut Harness, step: usize, max: usize, step_time: Duration, limits: Limits) -> Result<Ramp, String> {
    let mut w = Webinar::start(h, "loadtest-ramp", 0)?;
    let mut r = Ramp { limits, steps: Vec::new(), stopped: format!("reached --max {max}") };
    while w.viewers.len() < max {
        let n = step.min(max - w.viewers.len());
        if let Err(e) = w.add_viewers(h, n) {
            r.stopped = format!("joining failed at {} viewers: {e}", w.viewers.len());
            break;
        }
        // Let joins settle (keyframes, first NACK rounds) before measuring the step.
        std::thread::sleep(Duration::from_secs(1));
        let totals = h.measure(step_time, &format!("ramp {:>5} viewers", w.viewers.len()));
        let s = Step { viewers: w.viewers.len(), totals };
        let ok = s.within(&limits);
        r.steps.push(s);
        if !ok {
            r.stopped = format!("limit passed at {} viewers", w.viewers.len());
            break;
        }
    }
    w.end(h);
    Ok(r)
}

impl Ramp {
    /// The most viewers measured within the limits.
    pub fn capacity(&self) -> Option<&Step> {
        self.steps.iter().filter(|s| s.within(&self.limits)).max_by_key(|s| s.viewers)
    }

    pub fn table(&self) -> String {
        let mut out = String::from("ramp: 1 publisher, viewers added in steps\n");
        out.push_str(
            "  viewers  pkt/s out  loss %   p50 ms   p99 ms  join p99 ms  server core %  µs/pkt  tool core %\n",
        );
        for s in &self.steps {
            let t = &s.totals;
            let f = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
            out.push_str(&format!(
                "  {:>7}  {:>9.0}  {:>6.3}  {:>7}  {:>7}  {:>11}  {:>13}  {:>6}  {:>11.1}\n",
                s.viewers,
                t.packets_per_s(),
                t.loss_pct(),
                f(t.latency_video.quantile(0.5)),
                f(s.p99()),
                f(crate::report::quantile(&t.join, 0.99)),
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
            "limits": { "loss_pct": self.limits.loss_pct, "p99_ms": self.limits.p99.as_secs_f64() * 1e3 },
            "stopped": self.stopped,
            "capacity_viewers": self.capacity().map(|s| s.viewers),
            "capacity_packets_per_s": self.capacity().map(|s| s.totals.packets_per_s().round()),
            "steps": self.steps.iter().map(|s| json!({ "viewers": s.viewers, "totals": s.totals.to_json() })).collect::<Vec<_>>(),
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
        Panel { title: "video latency p99, ms".into(), series: series(&|s| ms(s.p99())) },
    ]
}

pub fn plot(r: &Ramp, png: &std::path::Path) -> Result<(), String> {
    crate::plot::write_png(png, "yunshi-loadtest ramp", "viewers", &panels(&[("server", r)]))
}
