//! yunshi-loadtest: see `yunshi-loadtest --help` and docs/loadtest.md.

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use loadtest::media::{encode_audio, encode_video, VideoSpec};
use loadtest::peer::Media;
use loadtest::scenario::{meeting, ramp, webinar, Harness, Target};
use loadtest::server::{Server, Yunshi};

#[derive(Parser)]
#[command(
    name = "yunshi-loadtest",
    about = "Load a WebRTC SFU with real endpoints and real media, and measure what arrives"
)]
struct Cli {
    /// The server's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "YUNSHI_LOADTEST_SERVER")]
    server: String,
    /// API token; without one the tool logs in with --user/--password.
    #[arg(long, env = "YUNSHI_LOADTEST_TOKEN")]
    token: Option<String>,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, env = "YUNSHI_ADMIN_PASSWORD")]
    password: Option<String>,
    /// What the server is: yunshi (WHIP/WHEP, conference WebSocket), janus (VideoRoom over its
    /// HTTP API at --server, e.g. http://10.99.0.1:8088/janus; webinar and ramp only) or relay
    /// (this tool's raw-limit baseline, spoken to like yunshi; webinar and ramp only).
    #[arg(long, default_value = "yunshi")]
    kind: String,
    /// Address the endpoints' UDP sockets bind to (and offer as their candidate).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// The server's process id: its CPU time and memory go into the result (same machine).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Media worker threads of this tool.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Video of each publisher: width, height, frame rate, bitrate (kbit/s), simulcast encodings.
    #[arg(long, default_value_t = 1280)]
    width: u16,
    #[arg(long, default_value_t = 720)]
    height: u16,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    #[arg(long, default_value_t = 1500)]
    kbps: u32,
    #[arg(long, default_value_t = 1)]
    layers: u8,
    /// Frames between the publishers' IDRs (60 at 30 fps: every 2 s, as IP cameras are usually
    /// set; WebRTC publishers send one only when asked).
    #[arg(long, default_value_t = 60)]
    gop: u32,
    /// Receivers do not negotiate RED audio.
    #[arg(long)]
    no_red: bool,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds between everyone joining and measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Write the result here as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// One publisher (WHIP) → N viewers (WHEP).
    Webinar {
        #[arg(long, default_value_t = 10)]
        viewers: usize,
        #[arg(long, default_value = "loadtest-webinar")]
        room: String,
    },
    /// What each hop of a cascaded conference adds: --venues publishers at the first of
    /// --levels (the bottom node), then --viewers watching from each level in turn.
    Cascade {
        /// The nodes' API addresses, bottom first (e.g. county,city,province); give --server too
        /// (the bottom one): the tool signs in there first.
        #[arg(long, value_delimiter = ',', required = true)]
        levels: Vec<String>,
        /// Their process ids, in the same order, for each node's CPU time.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
        #[arg(long, default_value_t = 10)]
        venues: usize,
        /// As many venues again at every level above the bottom.
        #[arg(long)]
        venues_every_level: bool,
        #[arg(long, default_value_t = 5)]
        viewers: usize,
        /// Tell the server each viewer's player is this many pixels high (WHEP's layer
        /// extension): with simulcast venues (--layers) a small player costs every link less.
        #[arg(long)]
        viewer_height: Option<u16>,
        #[arg(long, default_value = "loadtest-cascade")]
        room: String,
    },
    /// R rooms × P participants over the conference WebSocket: all publish, all subscribe.
    Meeting {
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value_t = 4)]
        participants: usize,
    },
    /// A webinar growing by --step viewers every --step-seconds until loss or p99 latency
    /// passes its limit, or --max viewers.
    Ramp {
        /// Rooms, each with one publisher; viewers are spread over them.
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value_t = 50)]
        step: usize,
        #[arg(long, default_value_t = 2000)]
        max: usize,
        #[arg(long, default_value_t = 10)]
        step_seconds: u64,
        #[arg(long, default_value_t = 0.1)]
        max_loss_pct: f64,
        #[arg(long, default_value_t = 10.0)]
        max_p99_ms: f64,
        /// Write the plot of the steps here (PNG).
        #[arg(long)]
        png: Option<std::path::PathBuf>,
    },
    /// Be the raw-limit baseline server: WHIP/WHEP with no SFU logic (every packet of a room's
    /// publisher to each of its viewers, unchanged). Point the tool at it like at yunshi.
    Relay {
        #[arg(long, default_value = "127.0.0.1:18090")]
        http: std::net::SocketAddr,
        /// UDP address to bind and offer as the ICE candidate.
        #[arg(long, default_value = "127.0.0.1:41100")]
        media: std::net::SocketAddr,
    },
    /// The machine's raw limit without a WebRTC stack: receive, decrypt once, encrypt and send
    /// per viewer (AES-128-GCM, recvmmsg/sendmmsg), on --relay-core; feeder on --tool-core.
    Ceiling {
        #[arg(long, default_value_t = 50)]
        viewers: usize,
        /// Input packets per second (set it above what one core can relay).
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        #[arg(long, default_value_t = 1100)]
        size: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        relay_core: Option<usize>,
        #[arg(long)]
        tool_core: Option<usize>,
    },
    /// Plot ramps written with --json (several servers side by side) into one PNG.
    Plot {
        /// Ramp results (JSON files from `ramp --json`).
        #[arg(required = true)]
        inputs: Vec<std::path::PathBuf>,
        #[arg(long)]
        png: std::path::PathBuf,
        #[arg(long, default_value = "yunshi-loadtest ramp")]
        title: String,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("yunshi-loadtest: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if let Scenario::Ceiling { viewers, rate, size, seconds, relay_core, tool_core } = &cli.scenario {
        let c = loadtest::ceiling::run(*viewers, *rate, *size, *seconds, *relay_core, *tool_core)
            .map_err(|e| e.to_string())?;
        println!("{}", c.table());
        if let Some(path) = &cli.json {
            let v = serde_json::json!({
                "scenario": "ceiling", "viewers": c.viewers, "packets_in": c.received, "packets_out": c.sent,
                "seconds": c.seconds, "cpu_s": c.cpu.as_secs_f64(), "us_per_packet": c.us_per_packet(),
                "full_core_pps": 1e6 / c.us_per_packet(),
            });
            std::fs::write(path, serde_json::to_string_pretty(&v).unwrap_or_default()).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    if let Scenario::Relay { http, media } = &cli.scenario {
        return loadtest::relay::run(*http, *media).map_err(|e| format!("relay: {e}"));
    }
    if let Scenario::Plot { inputs, png, title } = &cli.scenario {
        let mut ramps = Vec::new();
        for path in inputs {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            ramps.push(v);
        }
        ramp::plot_results(&ramps, png, title)?;
        eprintln!("wrote {}", png.display());
        return Ok(());
    }
    let janus = cli.kind == "janus";
    if !matches!(cli.kind.as_str(), "yunshi" | "janus" | "relay") {
        return Err(format!("--kind {}: yunshi, janus or relay (WHIP/WHEP like yunshi)", cli.kind));
    }
    let token = match cli.token.clone() {
        Some(t) => t,
        None if janus => String::new(),
        None => {
            let password = cli.password.clone().ok_or("give --token, or --password (or YUNSHI_ADMIN_PASSWORD)")?;
            loadtest::http::login(&cli.server, &cli.user, &password)?
        }
    };
    let spec = VideoSpec {
        width: cli.width,
        height: cli.height,
        fps: cli.fps,
        kbps: cli.kbps,
        layers: cli.layers,
        gop: cli.gop,
        ..Default::default()
    };
    eprintln!(
        "encoding media: H.264 {}x{} {} fps {} kbit/s, {} layer(s); Opus",
        spec.width, spec.height, spec.fps, spec.kbps, spec.layers
    );
    let video = encode_video(&spec)?;
    for l in &video {
        eprintln!(
            "  layer {}x{}: {:.0} kbit/s, {} frames ({} IDR), looped",
            l.width,
            l.height,
            l.bitrate_kbps(spec.fps),
            l.frames.len(),
            l.idr.len()
        );
    }
    let media = Arc::new(Media { video, audio: encode_audio(2, 32)?, fps: spec.fps });
    let target = Target { server: cli.server.clone(), token, server_pid: cli.server_pid };
    let mut h = Harness::new(target, media, cli.threads).map_err(|e| e.to_string())?;
    h.red = !cli.no_red;
    h.bind = cli.bind;
    let mut server: Box<dyn Server> = if janus {
        Box::new(loadtest::janus::Janus::new(&cli.server))
    } else {
        Box::new(Yunshi { server: cli.server.clone(), token: h.target.token.clone() })
    };
    h.progress = !cli.quiet;
    let duration = Duration::from_secs(cli.duration);
    let warmup = Duration::from_secs(cli.warmup);
    let params = serde_json::json!({
        "server": cli.server, "kind": cli.kind, "threads": cli.threads, "width": cli.width, "height": cli.height, "fps": cli.fps,
        "kbps": cli.kbps, "layers": cli.layers, "red": !cli.no_red, "duration_s": cli.duration,
    });
    let result = match cli.scenario {
        Scenario::Webinar { viewers, room } => {
            let t = webinar::run(&mut h, server.as_mut(), &room, viewers, warmup, duration)?;
            println!("webinar: 1 publisher → {viewers} viewers, {} s\n{}", cli.duration, t.table());
            serde_json::json!({ "scenario": "webinar", "viewers": viewers, "params": params, "result": t.to_json() })
        }
        Scenario::Cascade { levels, pids, venues, venues_every_level, viewers, viewer_height, room } => {
            let password =
                cli.password.clone().ok_or("cascade: give --password (the same admin password on every node)")?;
            let mut nodes = Vec::new();
            for (i, url) in levels.iter().enumerate() {
                let token = loadtest::http::login(url, &cli.user, &password)?;
                let server: Box<dyn Server> = Box::new(Yunshi { server: url.clone(), token });
                nodes.push(loadtest::scenario::cascade::Level { url: url.clone(), server, pid: pids.get(i).copied() });
            }
            let r = loadtest::scenario::cascade::run(
                &mut h,
                &mut nodes,
                &room,
                venues,
                venues_every_level,
                viewers,
                viewer_height,
                warmup,
                duration,
            )?;
            println!("{}", r.table());
            serde_json::json!({ "scenario": "cascade", "params": params, "result": r.to_json() })
        }
        Scenario::Meeting { .. } if cli.kind != "yunshi" => return Err("meeting runs against yunshi only".into()),
        Scenario::Meeting { rooms, participants } => {
            let t = meeting::run(&mut h, rooms, participants, warmup, duration)?;
            println!("meeting: {rooms} room(s) × {participants} participants, {} s\n{}", cli.duration, t.table());
            serde_json::json!({ "scenario": "meeting", "rooms": rooms, "participants": participants, "params": params, "result": t.to_json() })
        }
        Scenario::Plot { .. } | Scenario::Relay { .. } | Scenario::Ceiling { .. } => unreachable!("handled above"),
        Scenario::Ramp { rooms, step, max, step_seconds, max_loss_pct, max_p99_ms, png } => {
            let limits = ramp::Limits { loss_pct: max_loss_pct, p99: Duration::from_secs_f64(max_p99_ms / 1000.0) };
            let r = ramp::run(&mut h, server.as_mut(), rooms, step, max, Duration::from_secs(step_seconds), limits)?;
            println!("{}", r.table());
            if let Some(png) = png {
                ramp::plot(&r, &png)?;
                eprintln!("wrote {}", png.display());
            }
            serde_json::json!({ "scenario": "ramp", "params": params, "result": r.to_json() })
        }
    };
    h.stop();
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
