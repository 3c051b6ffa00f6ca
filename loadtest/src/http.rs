//! The signalling the load tool speaks over plain HTTP/1.1: log in, make sure a room exists,
//! WHIP/WHEP offers and session DELETE. One connection per request (`Connection: close`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `host:port` from `http://host:port[/...]` or `host:port`.
pub fn authority(server: &str) -> &str {
    let s = server.strip_prefix("http://").unwrap_or(server);
    s.split('/').next().unwrap_or(s)
}

pub fn request(
    server: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Response> {
    request_waiting(server, method, path, token, content_type, body, Duration::from_secs(15))
}

/// As `request`, waiting up to `wait` for the answer (a long poll waits longer).
pub fn request_waiting(
    server: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    wait: Duration,
) -> std::io::Result<Response> {
    let host = authority(server);
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(wait))?;
    s.set_nodelay(true)?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
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
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string())).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body).ok_or_else(|| std::io::Error::other("bad chunked body"))?;
    }
    Ok(Response { status, headers, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).ok()?.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn json_field(body: &[u8], field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get(field)?.as_str().map(str::to_string)
}

pub fn login(server: &str, user: &str, password: &str) -> Result<String, String> {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    let r = request(server, "POST", "/api/v1/auth/login", None, Some("application/json"), body.as_bytes())
        .map_err(|e| format!("login: {e}"))?;
    if r.status != 200 {
        return Err(format!("login: {} {}", r.status, r.text()));
    }
    json_field(&r.body, "token").ok_or_else(|| "login: no token in the answer".into())
}

/// Create room `id` unless it exists.
pub fn ensure_room(server: &str, token: &str, id: &str) -> Result<(), String> {
    let body = serde_json::json!({ "name": format!("loadtest {id}"), "id": id }).to_string();
    let r = request(server, "POST", "/api/v1/rooms", Some(token), Some("application/json"), body.as_bytes())
        .map_err(|e| format!("create room: {e}"))?;
    match r.status {
        201 | 409 => Ok(()),
        s => Err(format!("create room {id}: {s} {}", r.text())),
    }
}

/// POST an offer to a WHIP or WHEP endpoint; the session's Location and the answer.
pub fn post_offer(server: &str, token: &str, path: &str, offer: &str) -> Result<(String, String), String> {
    let r = request(server, "POST", path, Some(token), Some("application/sdp"), offer.as_bytes())
        .map_err(|e| format!("{path}: {e}"))?;
    if r.status != 201 {
        return Err(format!("{path}: {} {}", r.status, r.text()));
    }
    let location = r.header("location").unwrap_or_default().to_string();
    Ok((location, r.text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\nLocation: /whip/a/b\r\nContent-Length: 3\r\n\r\nv=0").unwrap();
        assert_eq!((r.status, r.header("location"), r.text().as_str()), (201, Some("/whip/a/b"), "v=0"));
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(r.text(), "abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(authority("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
    }
}
