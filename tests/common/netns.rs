//! A network namespace joined to this one by a veth pair: a real link between two processes on
//! this machine, whose sending side the kernel can cap with a token bucket (`tc tbf`; this
//! kernel has no netem). A yunshi node started inside (`Server::start_in`) reaches the root
//! namespace at `host_ip`, and is reached at `ns_ip`.
//!
//! Addresses come from 198.18.0.0/15 (the benchmarking range): the first 198.18.N.0/24 no
//! interface uses, .1 on the root side and .2 inside. Dropped with the value.

#![allow(dead_code)]

use std::process::{Command, Stdio};

pub struct Netns {
    pub name: String,
    pub host_ip: String,
    pub ns_ip: String,
    veth_host: String,
    veth_ns: String,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn found(tool: &str) -> bool {
    run("sh", &["-c", &format!("command -v {tool}")]).is_ok_and(|p| !p.trim().is_empty())
}

impl Netns {
    /// Why a namespace cannot be made here (not root, `ip` or `tc` missing), or `None`.
    pub fn unavailable() -> Option<String> {
        if run("id", &["-u"]).map(|u| u.trim() != "0").unwrap_or(true) {
            return Some("not running as root (network namespaces and tc need it)".into());
        }
        ["ip", "tc"].iter().find(|t| !found(t)).map(|t| format!("`{t}` not found"))
    }

    pub fn create(tag: &str) -> Netns {
        // Tests run in parallel: one at a time picks a free subnet and takes it.
        static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("ys{tag}{}", std::process::id());
        let id: String = id.chars().take(11).collect();
        let used = run("ip", &["-4", "-o", "addr", "show"]).expect("ip addr");
        let subnet = (0..256)
            .map(|n| format!("198.18.{n}"))
            .find(|s| !used.contains(&format!(" {s}.")))
            .expect("a free 198.18.N.0/24");
        let ns = Netns {
            name: id.clone(),
            host_ip: format!("{subnet}.1"),
            ns_ip: format!("{subnet}.2"),
            veth_host: format!("{id}h"),
            veth_ns: format!("{id}n"),
        };
        let _ = run("ip", &["netns", "del", &ns.name]);
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &ns.name],
            vec!["link", "add", &ns.veth_host, "type", "veth", "peer", "name", &ns.veth_ns],
            vec!["link", "set", &ns.veth_ns, "netns", &ns.name],
        ];
        for s in steps {
            run("ip", &s).expect("namespace set-up");
        }
        let host_cidr = format!("{}/24", ns.host_ip);
        let ns_cidr = format!("{}/24", ns.ns_ip);
        run("ip", &["addr", "add", &host_cidr, "dev", &ns.veth_host]).expect("host address");
        run("ip", &["link", "set", &ns.veth_host, "up"]).expect("host veth up");
        ns.exec(&["ip", "addr", "add", &ns_cidr, "dev", &ns.veth_ns]).expect("namespace address");
        ns.exec(&["ip", "link", "set", &ns.veth_ns, "up"]).expect("namespace veth up");
        ns.exec(&["ip", "link", "set", "lo", "up"]).expect("namespace loopback up");
        ns
    }

    /// A command run inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// The prefix that starts a program inside the namespace.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name].iter().map(|s| s.to_string()).collect()
    }

    /// Cap what leaves the namespace at `kbps` (None: no cap), with a token bucket that
    /// queues up to 50 ms and drops beyond, as a congested uplink would.
    pub fn cap_egress(&self, kbps: Option<u32>) {
        match kbps {
            None => {
                let _ = self.exec(&["tc", "qdisc", "del", "dev", &self.veth_ns, "root"]);
            }
            Some(kbps) => {
                // At least one full-size packet, else about 20 ms at the rate.
                let burst = (kbps as usize * 1000 / 8 / 50).max(3000).to_string();
                let rate = format!("{kbps}kbit");
                self.exec(&[
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    &self.veth_ns,
                    "root",
                    "tbf",
                    "rate",
                    &rate,
                    "burst",
                    &burst,
                    "latency",
                    "50ms",
                ])
                .expect("tc tbf");
            }
        }
    }

    /// Drop `percent` % of the UDP datagrams of at least `min_len` bytes (media, not RTCP or
    /// STUN) that leave the namespace for `to`, at random (nftables' `numgen random`: this
    /// kernel has no netem). Err if nftables is not there.
    pub fn lose_egress_media(&self, to: &str, min_len: u32, percent: u32) -> Result<(), String> {
        self.exec(&["nft", "add", "table", "inet", "loss"])?;
        self.exec(&["nft", "add", "chain", "inet", "loss", "out", "{ type filter hook output priority 0 ; }"])?;
        let rule = format!(
            "add rule inet loss out ip daddr {to} udp length >= {min_len} numgen random mod 100 < {percent} counter drop"
        );
        let args: Vec<&str> = std::iter::once("nft").chain(rule.split(' ')).collect();
        self.exec(&args).map(|_| ())
    }

    /// Datagrams `lose_egress_media` has dropped so far.
    pub fn lost(&self) -> u64 {
        let out = self.exec(&["nft", "list", "table", "inet", "loss"]).unwrap_or_default();
        out.split("packets ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Datagrams the cap has dropped so far.
    pub fn cap_drops(&self) -> u64 {
        let out = self.exec(&["tc", "-s", "qdisc", "show", "dev", &self.veth_ns]).unwrap_or_default();
        out.split("dropped ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = run("ip", &["link", "del", &self.veth_host]);
    }
}
