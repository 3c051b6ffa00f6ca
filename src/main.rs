//! The yunshi binary: read the configuration, open the store, start the engine (node, media
//! workers) and the HTTP signalling, and serve until stopped.

mod config;

use std::sync::{Arc, Mutex};

use actix::Actor;
use actix_web::web;
use clap::Parser;
use tracing::{error, info};

use engine::store::{now_secs, Store, User, UserRole};
use engine::{password, MediaConfig, Node, SledStore};
use signalling::jwt::JwtKey;
use signalling::AppState;

/// glibc raises its mmap threshold each time a large block is freed, after which blocks of that
/// size come from per-thread arenas and stay resident when freed (Argon2's 19 MiB, str0m's
/// setup buffers). A fixed threshold returns them to the system: a 2-party call measured
/// 112 MB resident without this and 15 MB with it (docs/benchmarks.md).
fn pin_malloc_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() {
    pin_malloc_mmap_threshold();
    let cli = config::Cli::parse();
    let cfg = match config::Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yunshi: {e}");
            std::process::exit(2);
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cfg.log.clone());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
    if let Err(e) = actix_web::rt::System::new().block_on(run(cfg)) {
        error!("{e}");
        eprintln!("yunshi: {e}");
        std::process::exit(1);
    }
}

async fn run(mut cfg: config::Config) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data).map_err(|e| format!("data dir {}: {e}", cfg.data.display()))?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&cfg.data).map_err(|e| format!("store: {e}"))?);
    // A parent set through the API replaces the configuration's (docs/api.md, Cascade).
    if let Some(parent) = engine::cascade::parent::load(store.as_ref()) {
        info!(parent = ?parent.url, "cascade parent as set through the API");
        cfg.cascade.parent_url = parent.url;
        cfg.cascade.parent_secret = parent.secret.map(String::into_bytes);
    }
    ensure_admin(store.as_ref())?;
    let jwt = JwtKey::new(&jwt_secret(&cfg, store.as_ref())?);

    let media = MediaConfig {
        bind_ip: cfg.media_bind,
        udp_port: cfg.udp_port,
        public_ip: cfg.public_ip,
        workers: cfg.workers,
        allocate_bandwidth: cfg.allocate_bandwidth,
        video_fec: cfg.video_fec,
        keyframe_request_interval: cfg.keyframe_request_interval,
        parent_rooms: match (&cfg.cascade.parent_url, &cfg.cascade.parent_secret) {
            (Some(url), Some(secret)) => Some(engine::cascade::media::ParentRooms {
                node: cfg.cascade.node.clone(),
                parent_url: url.clone(),
                secret: secret.clone(),
            }),
            _ => None,
        },
        node_name: cfg.cascade.node.clone(),
    };
    let node = Node::start(store.clone(), &media).map_err(|e| format!("media: {e}"))?;
    let cascade = engine::Cascade::new(cfg.cascade.clone(), node.clone()).start();
    let state = web::Data::new(AppState {
        store,
        node,
        jwt,
        cascade,
        cascade_secret: cfg.cascade.children_secret.clone(),
        metrics_public: cfg.metrics_public,
        sessions: Mutex::new(Default::default()),
    });

    let last = cfg.udp_port as u32 + cfg.workers as u32 - 1;
    info!(http = %cfg.http, udp = %format!("{}-{}", cfg.udp_port, last), public_ip = %cfg.public_ip, data = %cfg.data.display(), "yunshi starting");
    println!("yunshi is up: open http://{} (media on UDP {}:{}-{})", cfg.http, cfg.public_ip, cfg.udp_port, last);
    signalling::serve(state, cfg.http).await.map_err(|e| format!("http {}: {e}", cfg.http))
}

/// The first start creates `admin`, with YUNSHI_ADMIN_PASSWORD or a generated password printed once.
fn ensure_admin(store: &dyn Store) -> Result<(), String> {
    if !store.list_users().map_err(|e| e.to_string())?.is_empty() {
        return Ok(());
    }
    let (pw, generated) = match std::env::var("YUNSHI_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (password::generate(), true),
    };
    password::check_strength(&pw).map_err(|p| format!("YUNSHI_ADMIN_PASSWORD rejected: {p}"))?;
    let user = User {
        name: "admin".into(),
        password_hash: password::hash(&pw),
        role: UserRole::Admin,
        created_at: now_secs(),
    };
    store.put_user(&user).map_err(|e| e.to_string())?;
    if generated {
        println!("created user 'admin' with password: {pw}\n(shown once; set YUNSHI_ADMIN_PASSWORD before the first start to choose it)");
    } else {
        println!("created user 'admin' with the password from YUNSHI_ADMIN_PASSWORD");
    }
    Ok(())
}

fn jwt_secret(cfg: &config::Config, store: &dyn Store) -> Result<Vec<u8>, String> {
    if let Some(k) = &cfg.jwt_key {
        return Ok(k.as_bytes().to_vec());
    }
    if let Some(k) = store.get_setting("jwt_key").map_err(|e| e.to_string())? {
        return Ok(k);
    }
    let k: [u8; 32] = rand_bytes();
    store.put_setting("jwt_key", &k).map_err(|e| e.to_string())?;
    Ok(k.to_vec())
}

fn rand_bytes() -> [u8; 32] {
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut k))
        .expect("/dev/urandom readable");
    k
}
