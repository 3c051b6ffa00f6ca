//! Configuration: built-in defaults, then `conf/yunshi.toml` (or `--config FILE`), then
//! environment variables, then command-line flags — each overriding the one before.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(
    name = "yunshi",
    version,
    about = "yunshi: real-time media and conferencing engine (SFU, WHIP/WHEP, conference WebSocket)"
)]
pub struct Cli {
    /// TOML configuration file (every setting is documented in conf/yunshi.toml).
    #[arg(long, env = "YUNSHI_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address for the API, WebSocket, WHIP/WHEP and web client.
    #[arg(long, env = "YUNSHI_HTTP", value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,
    /// First UDP port for media; worker i uses PORT+i.
    #[arg(long, env = "YUNSHI_UDP_PORT", value_name = "PORT")]
    pub udp_port: Option<u16>,
    /// Address the media UDP sockets bind to.
    #[arg(long, env = "YUNSHI_MEDIA_BIND", value_name = "IP")]
    pub media_bind: Option<IpAddr>,
    /// Address put in ICE candidates: the one clients can reach.
    #[arg(long, env = "YUNSHI_PUBLIC_IP", value_name = "IP")]
    pub public_ip: Option<IpAddr>,
    /// Data directory for the embedded store.
    #[arg(long, env = "YUNSHI_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Media worker threads (default: one per core).
    #[arg(long, env = "YUNSHI_WORKERS")]
    pub workers: Option<usize>,
    /// Secret for signing tokens (HS256). Default: generated once and kept in the store.
    #[arg(long, env = "YUNSHI_JWT_KEY", hide_env_values = true)]
    pub jwt_key: Option<String>,
    /// Log filter, e.g. "info" or "yunshi=debug,str0m=warn" (RUST_LOG also works).
    #[arg(long, env = "YUNSHI_LOG")]
    pub log: Option<String>,
    /// Serve /metrics without a token.
    #[arg(long, env = "YUNSHI_METRICS_PUBLIC")]
    pub metrics_public: Option<bool>,
    /// Share each receiver's estimated bandwidth among its videos (default on).
    #[arg(long, env = "YUNSHI_ALLOCATE_BANDWIDTH")]
    pub allocate_bandwidth: Option<bool>,
    /// FEC on subscribers' video: off, auto (by loss and RTT) or always (by loss).
    #[arg(long, env = "YUNSHI_VIDEO_FEC")]
    pub video_fec: Option<String>,
    /// Keyframe requests to one publisher at most this often, in ms (default 150; 50-5000).
    #[arg(long, env = "YUNSHI_KEYFRAME_REQUEST_INTERVAL_MS")]
    pub keyframe_request_interval_ms: Option<u64>,
    /// This node's name in a cascade (default "yunshi").
    #[arg(long, env = "YUNSHI_NODE_NAME")]
    pub node_name: Option<String>,
    /// The parent node's API address (http://host:port): this node dials it and joins its cascade.
    #[arg(long, env = "YUNSHI_CASCADE_PARENT", value_name = "URL")]
    pub cascade_parent: Option<String>,
    /// Secret child nodes must present to join below this node (and, unless
    /// --cascade-parent-secret is given, the one this node presents to its parent).
    #[arg(long, env = "YUNSHI_CASCADE_SECRET", hide_env_values = true)]
    pub cascade_secret: Option<String>,
    /// Secret this node presents to its parent.
    #[arg(long, env = "YUNSHI_CASCADE_PARENT_SECRET", hide_env_values = true)]
    pub cascade_parent_secret: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    http: Option<SocketAddr>,
    udp_port: Option<u16>,
    media_bind: Option<IpAddr>,
    public_ip: Option<IpAddr>,
    data: Option<PathBuf>,
    workers: Option<usize>,
    jwt_key: Option<String>,
    log: Option<String>,
    metrics_public: Option<bool>,
    allocate_bandwidth: Option<bool>,
    video_fec: Option<String>,
    keyframe_request_interval_ms: Option<u64>,
    node_name: Option<String>,
    cascade_parent: Option<String>,
    cascade_secret: Option<String>,
    cascade_parent_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub http: SocketAddr,
    pub udp_port: u16,
    pub media_bind: IpAddr,
    pub public_ip: IpAddr,
    pub data: PathBuf,
    pub workers: usize,
    pub jwt_key: Option<String>,
    pub log: String,
    pub metrics_public: bool,
    pub allocate_bandwidth: bool,
    pub video_fec: sfu::VideoFec,
    pub keyframe_request_interval: std::time::Duration,
    pub cascade: engine::CascadeConfig,
}

impl Config {
    pub fn load(cli: Cli) -> Result<Self, String> {
        let file: File = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => File::default(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Config {
            http: cli.http.or(file.http).unwrap_or_else(|| "127.0.0.1:8080".parse().unwrap()),
            udp_port: cli.udp_port.or(file.udp_port).unwrap_or(40000),
            media_bind: cli.media_bind.or(file.media_bind).unwrap_or_else(|| "0.0.0.0".parse().unwrap()),
            public_ip: cli.public_ip.or(file.public_ip).unwrap_or_else(|| "127.0.0.1".parse().unwrap()),
            data: cli.data.or(file.data).unwrap_or_else(|| PathBuf::from("data")),
            workers: cli.workers.or(file.workers).unwrap_or(cores).max(1),
            jwt_key: cli.jwt_key.or(file.jwt_key).filter(|k| !k.is_empty()),
            log: cli.log.or(file.log).unwrap_or_else(|| "info".into()),
            metrics_public: cli.metrics_public.or(file.metrics_public).unwrap_or(true),
            allocate_bandwidth: cli.allocate_bandwidth.or(file.allocate_bandwidth).unwrap_or(true),
            video_fec: cli.video_fec.or(file.video_fec).as_deref().unwrap_or("auto").parse()?,
            keyframe_request_interval: {
                let ms = cli.keyframe_request_interval_ms.or(file.keyframe_request_interval_ms).unwrap_or(150);
                if !(50..=5000).contains(&ms) {
                    return Err(format!("keyframe_request_interval_ms {ms}: must be 50-5000"));
                }
                std::time::Duration::from_millis(ms)
            },
            cascade: {
                let secret = cli.cascade_secret.or(file.cascade_secret).filter(|s| !s.is_empty());
                let parent_secret = cli
                    .cascade_parent_secret
                    .or(file.cascade_parent_secret)
                    .filter(|s| !s.is_empty())
                    .or(secret.clone());
                let c = engine::CascadeConfig {
                    node: cli.node_name.or(file.node_name).unwrap_or_else(|| "yunshi".into()),
                    parent_url: cli.cascade_parent.or(file.cascade_parent).filter(|s| !s.is_empty()),
                    parent_secret: parent_secret.map(String::into_bytes),
                    children_secret: secret.map(String::into_bytes),
                };
                c.check()?;
                c
            },
        })
    }
}
