//! Shared harness for end-to-end tests: start the real `yunshi` binary on free ports with a
//! fresh data directory, and speak plain HTTP/1.1 to it (no client library in between).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Status, headers (lower-case names) and body of one HTTP response.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

pub const ADMIN_PASSWORD: &str = "test-Admin-pw-2026";

pub struct Server {
    pub child: Child,
    pub http: String,
    pub udp_port: u16,
    pub data: PathBuf,
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A base port with `n` free UDP ports after it.
pub fn free_udp_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let base = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if base > 65000 {
            continue;
        }
        if (0..n).all(|i| UdpSocket::bind(("0.0.0.0", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free UDP port range");
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("yunshi-test-{tag}-{}-{}", std::process::id(), rand_u32()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    u32::from_le_bytes(b)
}

impl Server {
    pub fn start(tag: &str) -> Server {
        Self::start_with_data(temp_dir(tag))
    }

    pub fn start_with_data(data: PathBuf) -> Server {
        Self::start_with(data, &[])
    }

    pub fn start_with(data: PathBuf, env: &[(&str, &str)]) -> Server {
        Self::start_on(free_tcp_port(), data, env, &[])
    }

    /// On a given HTTP port (to restart a node where its peers expect it), with extra flags.
    pub fn start_on(port: u16, data: PathBuf, env: &[(&str, &str)], args: &[&str]) -> Server {
        Self::start_in(None, "127.0.0.1", port, data, env, args)
    }

    /// Inside a network namespace (`netns`; `None`: this one), on `ip`, with extra flags.
    pub fn start_in(
        netns: Option<&netns::Netns>,
        ip: &str,
        port: u16,
        data: PathBuf,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let udp_port = free_udp_ports(2);
        let mut command = match netns {
            Some(ns) => {
                let prefix = ns.prefix();
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).arg(env!("CARGO_BIN_EXE_yunshi"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_yunshi")),
        };
        let child = command
            .args(["--http", &format!("{ip}:{port}"), "--udp-port", &udp_port.to_string(), "--public-ip", ip])
            .args(["--workers", "2", "--data"])
            .arg(&data)
            .args(args)
            .env("YUNSHI_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", std::env::var("YUNSHI_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start yunshi");
        let s = Server { child, http: format!("{ip}:{port}"), udp_port, data };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _, _)) = s.try_request("GET", "/healthz", None, None, &[]) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("yunshi did not become healthy");
    }

    pub fn kill9(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// One HTTP/1.1 request; returns status, headers (lower-case names) and body.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut s = TcpStream::connect(&self.http)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.http,
            body.len()
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split =
            raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
            body = dechunk(&body);
        }
        Ok((status, headers, body))
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        self.try_request(method, path, token, content_type, body).expect("http request")
    }

    /// Create the room `id` (named the same) as `token`'s user; panics unless 201.
    pub fn create_room(&self, token: &str, id: &str) {
        let (s, body) =
            self.json("POST", "/api/v1/rooms", Some(token), Some(serde_json::json!({"name": id, "id": id})));
        assert_eq!(s, 201, "creating room {id}: {body}");
    }

    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let ct = if bytes.is_empty() { None } else { Some("application/json") };
        let (status, _, body) = self.request(method, path, token, ct, &bytes);
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    pub fn login(&self, user: &str, password: &str) -> String {
        let (status, v) = self.json(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({"username": user, "password": password})),
        );
        assert_eq!(status, 200, "login failed: {v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// WHIP/WHEP: POST an SDP offer, expect `201`; returns (Location, answer).
    pub fn post_sdp(&self, path: &str, token: &str, sdp: &str) -> (String, String) {
        let (status, headers, body) = self.request("POST", path, Some(token), Some("application/sdp"), sdp.as_bytes());
        assert_eq!(status, 201, "{path}: {}", String::from_utf8_lossy(&body));
        let location = headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone()).expect("Location header");
        (location, String::from_utf8(body).unwrap())
    }

    pub fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD)
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        // Bounds are checked: a truncated body ends the loop instead of panicking.
        let Some(chunk) = b.get(eol + 2..eol + 2 + size) else { break };
        out.extend_from_slice(chunk);
        b = b.get(eol + 2 + size + 2..).unwrap_or_default();
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
pub mod netns;
pub mod relay;
pub mod rtc_client;
