//! The HTTP API against the real binary: bad input gets a clear 4xx JSON error and nothing
//! breaks; the store survives `kill -9`.

mod common;

use std::net::UdpSocket;

use common::{Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"], want_code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message missing: {body}");
}

fn raw(server: &Server, method: &str, path: &str, token: Option<&str>, ct: Option<&str>, body: &[u8]) -> (u16, Value) {
    let (s, _, b) = server.request(method, path, token, ct, body);
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[test]
fn bad_input_gets_json_errors_and_server_keeps_serving() {
    let server = Server::start("badinput");
    let token = server.admin_token();
    let (s, _) = server.json("POST", "/api/v1/rooms", Some(&token), Some(json!({"name": "keep", "id": "keep"})));
    assert_eq!(s, 201);

    // Malformed JSON, wrong shape, wrong content type.
    let (s, b) = raw(&server, "POST", "/api/v1/rooms", Some(&token), Some("application/json"), b"{\"name\": ");
    assert_error(s, &b, 400, "bad_json");
    let (s, b) = raw(&server, "POST", "/api/v1/rooms", Some(&token), Some("application/json"), b"{\"nom\": 1}");
    assert_error(s, &b, 400, "bad_json");
    let (s, b) = raw(&server, "POST", "/api/v1/auth/login", None, Some("text/plain"), b"hello");
    assert_error(s, &b, 415, "unsupported_media_type");

    // A body over 64 KiB.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let (s, b) = raw(&server, "POST", "/api/v1/rooms", Some(&token), Some("application/json"), big.as_bytes());
    assert_error(s, &b, 413, "too_large");
    let (s, _, _) = server.request("POST", "/whip/keep", Some(&token), Some("application/sdp"), &vec![b'v'; 70 * 1024]);
    assert_eq!(s, 413);

    // Broken SDP and wrong content type on WHIP/WHEP.
    for path in ["/whip/keep", "/whep/keep"] {
        let (s, b) = raw(&server, "POST", path, Some(&token), Some("application/sdp"), b"this is not sdp");
        assert_error(s, &b, 400, "bad_sdp");
        let (s, b) = raw(&server, "POST", path, Some(&token), Some("application/json"), b"{}");
        assert_error(s, &b, 415, "unsupported_media_type");
    }

    // Unknown room.
    let (s, b) = server.json("GET", "/api/v1/rooms/nope", Some(&token), None);
    assert_error(s, &b, 404, "not_found");
    let (s, b) = raw(&server, "POST", "/whip/nope", Some(&token), Some("application/sdp"), b"v=0\r\n");
    assert_error(s, &b, 404, "not_found");
    let (s, b) = server.json("DELETE", "/whep/keep/0000", Some(&token), None);
    assert_error(s, &b, 404, "not_found");

    // Missing, forged and expired tokens.
    let (s, b) = server.json("GET", "/api/v1/rooms", None, None);
    assert_error(s, &b, 401, "unauthorized");
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (s, b) = server.json("GET", "/api/v1/rooms", Some(&forged), None);
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = server.json("GET", "/api/v1/rooms", Some("not.a.jwt"), None);
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = raw(&server, "POST", "/whip/keep", None, Some("application/sdp"), b"v=0\r\n");
    assert_error(s, &b, 401, "unauthorized");

    // Wrong password; weak password; non-admin cannot manage users.
    let (s, b) = server.json(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "admin", "password": "wrong-password-1"})),
    );
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = server.json("POST", "/api/v1/users", Some(&token), Some(json!({"name": "bob", "password": "short"})));
    assert_error(s, &b, 400, "weak_password");
    let (s, b) =
        server.json("POST", "/api/v1/users", Some(&token), Some(json!({"name": "bob", "password": "password123"})));
    assert_error(s, &b, 400, "weak_password");
    let (s, _) = server.json(
        "POST",
        "/api/v1/users",
        Some(&token),
        Some(json!({"name": "bob", "password": "bob-has-a-long-pass"})),
    );
    assert_eq!(s, 201);
    let bob = server.login("bob", "bob-has-a-long-pass");
    let (s, b) = server.json("GET", "/api/v1/users", Some(&bob), None);
    assert_error(s, &b, 403, "forbidden");

    // Garbage datagrams on the media ports are dropped and counted, nothing panics.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 300)).map(|j| (i * 7 + j) as u8).collect();
        sock.send_to(&junk, ("127.0.0.1", server.udp_port + (i % 2) as u16)).unwrap();
    }
    // STUN-looking and RTP-looking garbage too.
    sock.send_to(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42], ("127.0.0.1", server.udp_port)).unwrap();
    sock.send_to(&[0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9], ("127.0.0.1", server.udp_port)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, _, m) = server.request("GET", "/metrics", None, None, b"");
    let m = String::from_utf8(m).unwrap();
    let dropped: f64 = m
        .lines()
        .filter(|l| l.starts_with("yunshi_dropped_packets_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(dropped >= 150.0, "only {dropped} garbage datagrams counted:\n{m}");

    // CORS: a WHIP/WHEP player on another origin may call us.
    let (s, headers, _) = server.request("OPTIONS", "/whip/keep", None, None, b"");
    assert_eq!(s, 204);
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(header("access-control-allow-origin"), "*");
    assert!(header("access-control-allow-headers").contains("Authorization"));
    assert!(header("access-control-expose-headers").contains("Location"));

    // Still serving, store intact.
    let (s, rooms) = server.json("GET", "/api/v1/rooms", Some(&token), None);
    assert_eq!(s, 200);
    assert_eq!(rooms.as_array().unwrap().len(), 1);
    assert_eq!(rooms[0]["id"], "keep");
    let (s, users) = server.json("GET", "/api/v1/users", Some(&token), None);
    assert_eq!(s, 200);
    assert_eq!(users.as_array().unwrap().len(), 2);
}

#[test]
fn store_survives_kill_9() {
    let mut server = Server::start("restart");
    let token = server.admin_token();
    let (s, _) = server.json(
        "POST",
        "/api/v1/users",
        Some(&token),
        Some(json!({"name": "carol", "password": "carol-long-password"})),
    );
    assert_eq!(s, 201);
    let (s, _) =
        server.json("POST", "/api/v1/rooms", Some(&token), Some(json!({"name": "Briefing", "id": "briefing"})));
    assert_eq!(s, 201);
    server.kill9();
    assert!(!server.alive());

    let data = server.data.clone();
    // Keep the directory: Drop of the old handle must not delete it.
    std::mem::forget(server);
    let server = Server::start_with_data(data);
    let token = server.admin_token();
    let carol = server.login("carol", "carol-long-password");
    let (s, room) = server.json("GET", "/api/v1/rooms/briefing", Some(&carol), None);
    assert_eq!(s, 200);
    assert_eq!(room["name"], "Briefing");
    let (s, log) = server.json("GET", "/api/v1/audit", Some(&token), None);
    assert_eq!(s, 200);
    let actions: Vec<&str> = log.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for want in ["login", "user.create", "room.create"] {
        assert!(actions.contains(&want), "audit log lacks {want}: {actions:?}");
    }
    let created = log.as_array().unwrap().iter().find(|e| e["action"] == "room.create").unwrap();
    assert_eq!(created["who"], "admin");
    assert_eq!(created["target"], "briefing");
    assert_eq!(created["from"], "127.0.0.1");
    // The admin password from the first start still works; the env var is not re-applied.
    assert!(!server.login("admin", ADMIN_PASSWORD).is_empty());
}

#[test]
fn expired_token_is_refused() {
    let key = "a-known-test-signing-key";
    let server = Server::start_with(common::temp_dir("expired"), &[("YUNSHI_JWT_KEY", key)]);
    let jwt = signalling::jwt::JwtKey::new(key.as_bytes());
    let now = engine::store::now_secs();
    let claims = |exp| signalling::jwt::Claims { sub: "admin".into(), role: "admin".into(), iat: now - 100, exp };
    let (s, b) = server.json("GET", "/api/v1/rooms", Some(&jwt.sign(&claims(now - 1))), None);
    assert_error(s, &b, 401, "unauthorized");
    assert_eq!(b["message"], "token expired");
    // The same key with a live expiry works: the refusal above was for expiry alone.
    let (s, _) = server.json("GET", "/api/v1/rooms", Some(&jwt.sign(&claims(now + 60))), None);
    assert_eq!(s, 200);
}

/// A conference client whose network vanishes says nothing: the server's WebSocket pings go
/// unanswered and it is dropped (no ghost in the room), while one that answers stays.
#[test]
fn a_silent_conference_client_is_dropped_and_a_live_one_stays() {
    use std::time::{Duration, Instant};
    type Ws = tungstenite::WebSocket<std::net::TcpStream>;

    let server = Server::start("silent");
    let token = server.admin_token();
    server.create_room(&token, "hall");
    let join = |name: &str| -> Ws {
        let tcp = std::net::TcpStream::connect(&server.http).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let url = format!("ws://{}/api/v1/rooms/hall/ws?token={token}", server.http);
        let (mut ws, _) = tungstenite::client(url.as_str(), tcp).expect("websocket");
        ws.send(tungstenite::Message::text(json!({"type": "join", "name": name}).to_string())).unwrap();
        ws
    };
    let names = || -> Vec<String> {
        let (_, room) = server.json("GET", "/api/v1/rooms/hall", Some(&token), None);
        let mut n: Vec<String> =
            room["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    let mut live = join("live");
    // The silent one joins, then its reads stop (so do the pongs its library would send).
    let _silent = join("silent");
    let start = Instant::now();
    while names() != ["live", "silent"] {
        assert!(start.elapsed() < Duration::from_secs(5), "both joined: {:?}", names());
        let _ = live.read();
    }
    // Reading answers the server's pings (tungstenite replies by itself).
    let dropped = loop {
        let _ = live.read();
        if names() == ["live"] {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the silent client is still there: {:?}", names());
    };
    assert!(dropped >= Duration::from_secs(10), "dropped after {dropped:?}: too eager for a live network");
    let audit = server.json("GET", "/api/v1/audit", Some(&token), None).1;
    assert!(audit.to_string().contains("room.timeout"), "audited: {audit}");
    println!("the silent client left the room {dropped:?} after joining; the live one stayed");
}

/// A setting out of range stops the server at start with a clear message, not a silent default.
#[test]
fn an_out_of_range_keyframe_interval_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yunshi"))
        .args(["--keyframe-request-interval-ms", "10", "--data", "/nonexistent-yunshi-test"])
        .output()
        .expect("run yunshi");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keyframe_request_interval_ms 10: must be 50-5000"), "{err}");
}
