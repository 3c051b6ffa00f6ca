//! Cascade links between real yunshi processes: province ← city ← county on loopback (and in
//! network namespaces where a link needs a real bottleneck or real loss).
//! The tree is seen from the top with link health; a killed middle node is seen down from
//! both sides within 3 s; restarted, it rejoins and the tree recovers with no manual step.

mod common;

use std::time::{Duration, Instant};

use common::netns::Netns;
use common::{free_tcp_port, temp_dir, Server};
use serde_json::Value;

const SECRET: &str = "cascade-test-secret-2026";

fn node(name: &str, port: u16, parent: Option<u16>) -> Server {
    node_in(None, "127.0.0.1", name, port, parent.map(|p| format!("127.0.0.1:{p}")))
}

/// A node inside `netns` (or this namespace), on `ip`, below the node at `parent` (ip:port).
fn node_in(netns: Option<&Netns>, ip: &str, name: &str, port: u16, parent: Option<String>) -> Server {
    let parent_url = parent.map(|p| format!("http://{p}"));
    let mut args = vec!["--node-name", name, "--cascade-secret", SECRET];
    if let Some(url) = &parent_url {
        args.extend(["--cascade-parent", url.as_str()]);
    }
    Server::start_in(netns, ip, port, temp_dir(name), &[], &args)
}

fn tree(s: &Server, token: &str) -> Value {
    let (status, v) = s.json("GET", "/api/v1/cascade", Some(token), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// Poll `f` every 50 ms until it holds; the time it took, or a panic with `what` and the last view.
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> (bool, Value)) -> Duration {
    let start = Instant::now();
    loop {
        let (ok, last) = f();
        if ok {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}; last view: {last}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Province ← city ← county, each node with its admin token, the room `room` on all three and
/// the tree up. The ports stay known so a node can be restarted where its neighbours expect it.
struct Levels {
    province: Server,
    city: Server,
    county: Server,
    pt: String,
    ct: String,
    kt: String,
    p_port: u16,
    c_port: u16,
}

fn three_levels_with_room(room: &str) -> Levels {
    let (p_port, c_port, k_port) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let province = node("province", p_port, None);
    let city = node("city", c_port, Some(p_port));
    let county = node("county", k_port, Some(c_port));
    let (pt, ct, kt) = (province.admin_token(), city.admin_token(), county.admin_token());
    for (s, t) in [(&province, &pt), (&city, &ct), (&county, &kt)] {
        s.create_room(t, room);
    }
    wait_for("the tree is up", Duration::from_secs(15), || {
        let v = tree(&province, &pt);
        (full_tree_up(&v), v)
    });
    Levels { province, city, county, pt, ct, kt, p_port, c_port }
}

fn child<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["children"].as_array()?.iter().find(|c| c["node"] == name)
}

fn full_tree_up(v: &Value) -> bool {
    child(v, "city").is_some_and(|c| c["state"] == "up" && child(c, "county").is_some_and(|k| k["state"] == "up"))
}

#[test]
fn three_levels_link_fail_and_recover() {
    let (p_port, c_port, k_port) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let province = node("province", p_port, None);
    let mut city = node("city", c_port, Some(p_port));
    let county = node("county", k_port, Some(c_port));
    let (pt, ct, kt) = (province.admin_token(), city.admin_token(), county.admin_token());

    // The tree, seen from the top: city below province, county below city, all up.
    wait_for("province sees city and county up", Duration::from_secs(15), || {
        let v = tree(&province, &pt);
        (full_tree_up(&v), v)
    });
    let v = tree(&province, &pt);
    assert_eq!(v["node"], "province");
    assert!(v["parent"].is_null(), "the top has no parent: {v}");
    // The child measures the round trip on its heartbeats and reports it on the next one.
    wait_for("the city link's RTT is shown", Duration::from_secs(5), || {
        let v = tree(&province, &pt);
        (child(&v, "city").is_some_and(|c| c["rtt_ms"].as_f64().is_some_and(|ms| ms < 1000.0)), v)
    });
    let k = tree(&county, &kt);
    assert_eq!((k["parent"]["node"].as_str(), k["parent"]["state"].as_str()), (Some("city"), Some("up")), "{k}");

    // Links are for nodes holding the secret; the tree is for signed-in users.
    let (status, body) = province.json("GET", "/api/v1/cascade/link?token=v1.rogue.99999999999.00", None, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized", "a JSON error: {body}");
    let forged = engine_token("wrong-secret", "rogue");
    assert_eq!(province.json("GET", &format!("/api/v1/cascade/link?token={forged}"), None, None).0, 401);
    assert_eq!(province.json("GET", "/api/v1/cascade", None, None).0, 401);
    let audit = province.json("GET", "/api/v1/audit", Some(&pt), None).1;
    assert!(
        audit.to_string().contains("cascade.link") && audit.to_string().contains("node:city"),
        "link audited: {audit}"
    );

    // Kill the middle node: both sides see it within 3 s.
    city.kill9();
    let (seen_above, seen_below) = city_seen_down(&province, &pt, &county, &kt, Instant::now(), "killed");
    assert!(
        seen_above <= Duration::from_secs(3) && seen_below <= Duration::from_secs(3),
        "{seen_above:?} {seen_below:?}"
    );
    let v = tree(&province, &pt);
    assert!(
        child(&v, "city").unwrap()["children"].as_array().unwrap().is_empty(),
        "no ghost county behind a down link: {v}"
    );

    // Restart it where it was: the links come back by themselves.
    let city = node("city", c_port, Some(p_port));
    let restarted = Instant::now();
    wait_for("the whole tree is up again", Duration::from_secs(15), || {
        let v = tree(&province, &pt);
        (full_tree_up(&v), v)
    });
    wait_for("county's parent link is up again", Duration::from_secs(5), || {
        let v = tree(&county, &kt);
        (v["parent"]["state"] == "up", v)
    });
    let recovered = restarted.elapsed();

    // A node that hangs keeps its TCP connections open: only the heartbeats' silence shows it.
    signal(&city, "-STOP");
    let (silent_above, silent_below) = city_seen_down(&province, &pt, &county, &kt, Instant::now(), "frozen");
    signal(&city, "-CONT");
    wait_for("the tree is up again after the thaw", Duration::from_secs(15), || {
        let v = tree(&province, &pt);
        (full_tree_up(&v), v)
    });
    println!(
        "killed: seen down above {seen_above:?}, below {seen_below:?}; restarted: recovered in {recovered:?}; \
         frozen: seen down above {silent_above:?}, below {silent_below:?}"
    );
    let _ = ct;
}

/// A node's parent can be set through the API, not only the configuration: the city (started
/// as a top node) is given the province, joins it with its room, is moved away and back, and
/// keeps the API's choice over a restart. Bad requests get JSON errors; only admins may.
#[test]
fn a_parent_set_through_the_api_is_joined_and_kept() {
    use common::rtc_client::Endpoint;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    let (p_port, c_port) = (free_tcp_port(), free_tcp_port());
    let province = node("province", p_port, None);
    let city_data = temp_dir("city");
    let city_args = ["--node-name", "city", "--cascade-secret", SECRET];
    let city = Server::start_on(c_port, city_data.clone(), &[], &city_args);
    let (pt, ct) = (province.admin_token(), city.admin_token());
    for (s, t) in [(&province, &pt), (&city, &ct)] {
        s.create_room(t, "conf");
    }
    // A venue in the city opens its room (and so its link up, once there is a parent).
    let stop = Arc::new(AtomicBool::new(false));
    let (mut venue, offer) = Endpoint::offer(true);
    let (_, answer) = city.post_sdp("/whip/conf", &ct, &offer);
    venue.accept_answer(&answer);
    let (tx, _rx) = mpsc::channel();
    let venue = venue.run(Duration::from_secs(60), Some(str0m::format::Codec::Vp8), 0, tx, stop.clone());
    assert!(tree(&city, &ct)["parent"].is_null());

    // Refused: no token, a user who is not an admin, a URL that is not http://host:port, an
    // unknown field.
    let body = |url: &str| serde_json::json!({ "url": url });
    let province_url = format!("http://127.0.0.1:{p_port}");
    assert_eq!(city.json("PUT", "/api/v1/cascade/parent", None, Some(body(&province_url))).0, 401);
    let (status, _) = city.json(
        "POST",
        "/api/v1/users",
        Some(&ct),
        Some(serde_json::json!({"name": "clerk", "password": "clerk-password-1", "role": "user"})),
    );
    assert_eq!(status, 201);
    let clerk = city.login("clerk", "clerk-password-1");
    assert_eq!(city.json("PUT", "/api/v1/cascade/parent", Some(&clerk), Some(body(&province_url))).0, 403);
    let (status, err) = city.json("PUT", "/api/v1/cascade/parent", Some(&ct), Some(body("https://province")));
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")), "{err}");
    let extra = serde_json::json!({ "url": province_url, "mode": "tls" });
    assert_eq!(city.json("PUT", "/api/v1/cascade/parent", Some(&ct), Some(extra)).0, 400);
    assert!(tree(&city, &ct)["parent"].is_null(), "a refused request changes nothing");

    // Set: the control link comes up, and the open room joins the province's.
    let (status, v) = city.json("PUT", "/api/v1/cascade/parent", Some(&ct), Some(body(&province_url)));
    assert_eq!(status, 200, "{v}");
    let joined = wait_for("the city up below the province", Duration::from_secs(10), || {
        let v = tree(&province, &pt);
        (child(&v, "city").is_some_and(|c| c["state"] == "up"), v)
    });
    wait_for("the city's venue in the province's room", Duration::from_secs(10), || {
        let t = tracks_of(&province, &pt, "conf", "cascade:city");
        (t == ["audio", "video"], members(&province, &pt, "conf"))
    });
    let c = tree(&city, &ct);
    assert_eq!((c["parent"]["node"].as_str(), c["parent"]["state"].as_str()), (Some("province"), Some("up")), "{c}");

    // Removed: the city is the top again; its link and its room's leave the province.
    assert_eq!(city.json("DELETE", "/api/v1/cascade/parent", Some(&ct), None).0, 200);
    wait_for("the city down below the province", Duration::from_secs(5), || {
        let v = tree(&province, &pt);
        (child(&v, "city").is_some_and(|c| c["state"] == "down"), v)
    });
    wait_for("no cascade:city in the province's room", Duration::from_secs(5), || {
        let m = members(&province, &pt, "conf");
        (!m.to_string().contains("cascade:city"), m)
    });
    assert!(tree(&city, &ct)["parent"].is_null());

    // Set again, then restart the city with no parent in its configuration: the API's choice
    // holds.
    assert_eq!(city.json("PUT", "/api/v1/cascade/parent", Some(&ct), Some(body(&province_url))).0, 200);
    wait_for("the city up again", Duration::from_secs(10), || {
        let v = tree(&province, &pt);
        (child(&v, "city").is_some_and(|c| c["state"] == "up"), v)
    });
    let mut city = city;
    city.kill9();
    wait_for("the killed city seen down", Duration::from_secs(5), || {
        let v = tree(&province, &pt);
        (child(&v, "city").is_some_and(|c| c["state"] == "down"), v)
    });
    let city = Server::start_on(c_port, city_data, &[], &city_args);
    let restarted = wait_for("the restarted city up below the province", Duration::from_secs(15), || {
        let v = tree(&province, &pt);
        (child(&v, "city").is_some_and(|c| c["state"] == "up"), v)
    });
    let ct = city.admin_token();
    let c = tree(&city, &ct);
    assert_eq!((c["parent"]["node"].as_str(), c["parent"]["state"].as_str()), (Some("province"), Some("up")), "{c}");
    let audit = city.json("GET", "/api/v1/audit", Some(&ct), None).1;
    assert!(audit.to_string().contains("cascade.parent"), "audited: {audit}");
    stop.store(true, Ordering::Relaxed);
    venue.join().unwrap();
    println!("parent set through the API: joined in {joined:?}; after a restart, up again in {restarted:?}");
}

/// Waits until the province sees its child `city` down and the county sees its parent down,
/// both within 3 s of `since`; the time each took.
fn city_seen_down(
    province: &Server,
    pt: &str,
    county: &Server,
    kt: &str,
    since: Instant,
    how: &str,
) -> (Duration, Duration) {
    let limit = Duration::from_secs(3);
    wait_for(&format!("province sees a {how} city down"), limit, || {
        let v = tree(province, pt);
        (child(&v, "city").is_some_and(|c| c["state"] == "down"), v)
    });
    let above = since.elapsed();
    wait_for(
        &format!("county sees its {how} parent down"),
        limit - above.min(limit) + Duration::from_millis(1),
        || {
            let v = tree(county, kt);
            (v["parent"]["state"] == "down", v)
        },
    );
    (above, since.elapsed())
}

fn signal(s: &Server, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &s.child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

/// A token signed with some secret (the format of engine::cascade::token), to show that a
/// well-formed token with the wrong secret is refused.
fn engine_token(secret: &str, node: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    engine::cascade::token::mint(secret.as_bytes(), node, now)
}

type Ws = tungstenite::WebSocket<std::net::TcpStream>;

fn ws_connect(s: &Server, path: &str) -> Ws {
    let tcp = std::net::TcpStream::connect(&s.http).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{}{path}", s.http).as_str(), tcp).expect("websocket");
    ws
}

/// A participant in `room` over the conference WebSocket (signalling only, no media).
fn join(s: &Server, token: &str, room: &str, name: &str) -> Ws {
    let mut ws = ws_connect(s, &format!("/api/v1/rooms/{room}/ws?token={token}"));
    ws.send(tungstenite::Message::text(serde_json::json!({"type": "join", "name": name}).to_string())).unwrap();
    expect(&mut ws, "joined", |_| true);
    ws
}

/// The next message of type `kind` that satisfies `check` (others are skipped), within 5 s.
fn expect(ws: &mut Ws, kind: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == kind && check(&v) {
                    return v;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("waiting for {kind}: {e}"),
        }
    }
    panic!("no {kind} message within 5 s");
}

fn command(s: &Server, token: &str, body: Value) -> (u16, Value) {
    s.json("POST", "/api/v1/cascade/commands", Some(token), Some(body))
}

fn nodes_ok(v: &Value) -> Vec<(String, bool)> {
    let mut r: Vec<(String, bool)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["node"].as_str().unwrap().to_string(), r["ok"].as_bool().unwrap()))
        .collect();
    r.sort();
    r
}

#[test]
fn commands_travel_down_and_are_acknowledged() {
    // The conference spans a room of the same id on each level.
    let Levels { province, city, county, pt, ct, kt, .. } = three_levels_with_room("conf");
    let mut venue = join(&county, &kt, "conf", "county-chief");

    // The province mutes the county venue, two hops down; the county acknowledges.
    let (status, v) =
        command(&province, &pt, serde_json::json!({"target": "county", "room": "conf", "action": {"type": "mute"}}));
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["ok"].as_bool(), nodes_ok(&v)), (Some(true), vec![("county".into(), true)]), "{v}");
    expect(&mut venue, "mute_requested", |m| m["by"] == "admin@province" && m["kind"] == "audio" && m["muted"] == true);

    // Lock everyone's view on the county venue, then roll-call the city: every level answers.
    let all = vec![("city".to_string(), true), ("county".to_string(), true), ("province".to_string(), true)];
    let (status, v) = command(
        &province,
        &pt,
        serde_json::json!({"target": "*", "room": "conf", "action": {"type": "lock", "venue": "county"}}),
    );
    assert_eq!((status, nodes_ok(&v)), (200, all.clone()), "{v}");
    expect(&mut venue, "view_locked", |m| m["venue"] == "county" && m["by"] == "admin@province");
    let (status, v) = command(
        &province,
        &pt,
        serde_json::json!({"target": "*", "room": "conf", "action": {"type": "roll_call", "venue": "city"}}),
    );
    assert_eq!((status, nodes_ok(&v)), (200, all.clone()), "{v}");
    expect(&mut venue, "roll_call", |m| m["venue"] == "city");
    // Someone joining the county venue later is told of the lock at once.
    let mut late = join(&county, &kt, "conf", "late-comer");
    expect(&mut late, "view_locked", |m| m["venue"] == "county");
    // The city can set its own subtree's layout too.
    let (status, v) = command(
        &city,
        &ct,
        serde_json::json!({"target": "county", "room": "conf", "action": {"type": "layout", "layout": "1+5"}}),
    );
    assert_eq!((status, nodes_ok(&v)), (200, vec![("county".into(), true)]), "{v}");
    expect(&mut venue, "layout", |m| m["layout"] == "1+5" && m["by"] == "admin@city");

    // A node that lacks the room answers so, instead of pretending.
    let (status, v) = command(
        &province,
        &pt,
        serde_json::json!({"target": "city", "room": "elsewhere", "action": {"type": "unlock"}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["results"][0]["error"].as_str().unwrap().contains("no room"), "{v}");

    // Never upwards: from the county to the province or the city, via the API ...
    for up in ["province", "city"] {
        let (status, v) =
            command(&county, &kt, serde_json::json!({"target": up, "room": "conf", "action": {"type": "end"}}));
        assert_eq!(status, 403, "{v}");
        assert_eq!(v["error"], "forbidden", "{v}");
        assert!(v["message"].as_str().unwrap().contains("downwards"), "{v}");
    }
    // ... or up a link: a child that sends a command is refused.
    let token = engine_token(SECRET, "rogue-county");
    let mut link = ws_connect(&province, &format!("/api/v1/cascade/link?token={token}"));
    link.send(tungstenite::Message::text(r#"{"type":"hello","node":"rogue-county"}"#)).unwrap();
    expect(&mut link, "welcome", |m| m["node"] == "province");
    let up = serde_json::json!({"type": "command", "id": 1, "target": "province", "room": "conf", "action": {"type": "end"}, "by": "x@rogue"});
    link.send(tungstenite::Message::text(up.to_string())).unwrap();
    expect(&mut link, "error", |m| m["code"] == "forbidden");
    // Non-admins may not command.
    assert_eq!(
        command(
            &province,
            "not-a-token",
            serde_json::json!({"target": "county", "room": "conf", "action": {"type": "end"}})
        )
        .0,
        401
    );

    // The venue still runs (nothing above ended it), and the commands are in the audit log.
    let audit = province.json("GET", "/api/v1/audit", Some(&pt), None).1.to_string();
    assert!(audit.contains("cascade.command") && audit.contains("conf@county"), "{audit}");
    let (status, v) =
        command(&province, &pt, serde_json::json!({"target": "county", "room": "conf", "action": {"type": "end"}}));
    assert_eq!((status, nodes_ok(&v)), (200, vec![("county".into(), true)]), "{v}");
    expect(&mut venue, "room_closed", |m| m["reason"].as_str().unwrap().contains("admin@province"));
}

fn members(s: &Server, token: &str, room: &str) -> Value {
    let (status, v) = s.json("GET", &format!("/api/v1/rooms/{room}"), Some(token), None);
    assert_eq!(status, 200, "{v}");
    v["members"].clone()
}

/// The tracks of the member called `name` in `room`, by kind.
fn tracks_of(s: &Server, token: &str, room: &str, name: &str) -> Vec<String> {
    let m = members(s, token, room);
    let mut kinds: Vec<String> = m
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .flat_map(|p| p["tracks"].as_array().cloned().unwrap_or_default())
        .map(|t| t["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds
}

/// The venue (`node/participant`) behind each track of the member called `name` in `room`.
fn sources_of(s: &Server, token: &str, room: &str, name: &str) -> Vec<String> {
    let m = members(s, token, room);
    m.as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .flat_map(|p| p["tracks"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            format!(
                "{}/{}",
                t["source"]["node"].as_str().unwrap_or("?"),
                t["source"]["participant"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn metric(s: &Server, name: &str) -> f64 {
    let (_, _, body) = s.request("GET", "/metrics", None, None, b"");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn media_crosses_two_hops_once_per_link() {
    use common::rtc_client::{Endpoint, Received};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    let Levels { province, city, county, pt, ct, kt, p_port, c_port } = three_levels_with_room("conf");

    // A county participant publishes (WHIP: VP8 and Opus).
    let pub_stop = Arc::new(AtomicBool::new(false));
    let (mut publisher, offer) = Endpoint::offer(true);
    let (_, answer) = county.post_sdp("/whip/conf", &kt, &offer);
    publisher.accept_answer(&answer);
    let (ptx, _prx) = mpsc::channel();
    let pub_thread = publisher.run(Duration::from_secs(60), Some(str0m::format::Codec::Vp8), 0, ptx, pub_stop.clone());

    // Its venue goes up once per link: one participant for the county in the city's room, one
    // for the city in the province's room, each with the audio and the video.
    let av = vec!["audio".to_string(), "video".to_string()];
    wait_for("the county's tracks in the city's room", Duration::from_secs(15), || {
        let t = tracks_of(&city, &ct, "conf", "cascade:county");
        (t == av, members(&city, &ct, "conf"))
    });
    wait_for("and in the province's room, over the second hop", Duration::from_secs(15), || {
        let t = tracks_of(&province, &pt, "conf", "cascade:city");
        (t == av, members(&province, &pt, "conf"))
    });
    // Each level names the venue behind the link's tracks: the county's publisher.
    let venue = vec!["county/admin (whip)".to_string(); 2];
    for (at, s, token, link) in [("city", &city, &ct, "cascade:county"), ("province", &province, &pt, "cascade:city")] {
        wait_for(&format!("the venue named in the {at}'s room"), Duration::from_secs(5), || {
            (sources_of(s, token, "conf", link) == venue, members(s, token, "conf"))
        });
    }

    // Three viewers in the city and one in the province.
    let viewer = |s: &Server, token: &str, stop: &Arc<AtomicBool>| {
        let (mut v, offer) = Endpoint::offer(false);
        let (_, answer) = s.post_sdp("/whep/conf", token, &offer);
        v.accept_answer(&answer);
        let (tx, rx) = mpsc::channel();
        (v.run(Duration::from_secs(40), None, 0, tx, stop.clone()), rx)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut viewers = vec![viewer(&province, &pt, &stop)];
    for _ in 0..3 {
        viewers.push(viewer(&city, &ct, &stop));
    }
    let county_out_before = metric(&county, "yunshi_packets_total{direction=\"out\",kind=\"video\"}");
    let county_in_before = metric(&county, "yunshi_packets_total{direction=\"in\",kind=\"video\"}");
    std::thread::sleep(Duration::from_secs(6));
    let county_out = metric(&county, "yunshi_packets_total{direction=\"out\",kind=\"video\"}") - county_out_before;
    let county_in = metric(&county, "yunshi_packets_total{direction=\"in\",kind=\"video\"}") - county_in_before;
    stop.store(true, Ordering::Relaxed);

    for (i, (h, rx)) in viewers.into_iter().enumerate() {
        h.join().unwrap();
        let (mut video, mut corrupt, mut first_key) = (Vec::new(), 0, None);
        while let Ok(r) = rx.try_recv() {
            match r {
                Received::Video { counter, keyframe, .. } => {
                    first_key.get_or_insert(keyframe);
                    video.push(counter);
                }
                Received::Corrupt => corrupt += 1,
                _ => {}
            }
        }
        let at = if i == 0 { "province (two hops)" } else { "city (one hop)" };
        assert_eq!(corrupt, 0, "viewer {i} in the {at}: corrupt payloads");
        assert!(video.len() >= 60, "viewer {i} in the {at}: {} video packets", video.len());
        assert!(video.windows(2).all(|w| w[0] < w[1]), "viewer {i} in the {at}: video out of order");
        assert_eq!(first_key, Some(true), "viewer {i} in the {at} started on a delta frame");
    }
    // The county sent its video up once, whatever the three city viewers and the province
    // watch: out ≈ in (a retransmission or two aside), not 4× in.
    assert!(county_in > 100.0, "county received {county_in} video packets");
    assert!(county_out <= county_in * 1.2, "county sent {county_out} video packets for {county_in} received");
    println!("county: {county_in} video packets in, {county_out} out in 6 s");

    // The city dies (the county keeps publishing): no ghost stands for it anywhere, within 3 s.
    let city_data = city.data.clone();
    let mut city = city;
    city.kill9();
    let killed = Instant::now();
    wait_for("no cascade:city left in the province's room", Duration::from_secs(3), || {
        let m = members(&province, &pt, "conf");
        (!m.to_string().contains("cascade:city"), m)
    });
    wait_for(
        "no cascade:parent left in the county's room",
        Duration::from_secs(3) - killed.elapsed().min(Duration::from_secs(3)) + Duration::from_millis(1),
        || {
            let m = members(&county, &kt, "conf");
            (!m.to_string().contains("cascade:parent"), m)
        },
    );

    // It comes back (same port and store): media flows two hops up again with no manual step.
    let city = Server::start_on(
        c_port,
        city_data,
        &[],
        &["--node-name", "city", "--cascade-secret", SECRET, "--cascade-parent", &format!("http://127.0.0.1:{p_port}")],
    );
    let restarted = Instant::now();
    wait_for("the county's tracks reach the province again", Duration::from_secs(20), || {
        let t = tracks_of(&province, &pt, "conf", "cascade:city");
        (t == av, members(&province, &pt, "conf"))
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (h, rx) = viewer(&province, &pt, &stop);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    let video = rx.try_iter().filter(|r| matches!(r, Received::Video { .. })).count();
    assert!(video >= 30, "after the city's restart the province viewer got {video} video packets");
    println!("city restarted: media two hops up again {:?} after the restart", restarted.elapsed());

    // The city hangs (SIGSTOP): its connections stay open, but the room links' pings go
    // unanswered, so both neighbours drop its stand-ins within 3 s all the same, and take
    // them back after the thaw.
    signal(&city, "-STOP");
    let frozen = Instant::now();
    let above = wait_for("no cascade:city in the province's room while the city hangs", Duration::from_secs(3), || {
        let m = members(&province, &pt, "conf");
        (!m.to_string().contains("cascade:city"), m)
    });
    wait_for(
        "no cascade:parent in the county's room while the city hangs",
        Duration::from_secs(3) - frozen.elapsed().min(Duration::from_secs(3)) + Duration::from_millis(1),
        || {
            let m = members(&county, &kt, "conf");
            (!m.to_string().contains("cascade:parent"), m)
        },
    );
    let below = frozen.elapsed();
    signal(&city, "-CONT");
    let thawed = Instant::now();
    wait_for("the county's tracks reach the province again after the thaw", Duration::from_secs(20), || {
        let t = tracks_of(&province, &pt, "conf", "cascade:city");
        (t == av, members(&province, &pt, "conf"))
    });
    println!(
        "city hung: dropped above after {above:?}, below after {below:?}; back {:?} after the thaw",
        thawed.elapsed()
    );
    pub_stop.store(true, Ordering::Relaxed);
    pub_thread.join().unwrap();
    let _ = (city, ct);
}

#[test]
fn a_venue_crosses_a_link_only_while_someone_above_watches_it() {
    use common::rtc_client::{Endpoint, Received};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    let Levels { province, city, county, pt, kt, .. } = three_levels_with_room("conf");

    // Two venues publish in the county; nobody above watches yet.
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for _ in 0..2 {
        let (mut p, offer) = Endpoint::offer(true);
        let (_, answer) = county.post_sdp("/whip/conf", &kt, &offer);
        p.accept_answer(&answer);
        let (tx, _rx) = mpsc::channel();
        publishers.push((p.run(Duration::from_secs(60), Some(str0m::format::Codec::Vp8), 0, tx, stop.clone()), _rx));
    }
    let four = vec!["audio".to_string(), "audio".into(), "video".into(), "video".into()];
    wait_for("both venues are known two levels up", Duration::from_secs(15), || {
        let t = tracks_of(&province, &pt, "conf", "cascade:city");
        (t == four, members(&province, &pt, "conf"))
    });
    let out = |s: &Server| metric(s, "yunshi_packets_total{direction=\"out\",kind=\"video\"}");
    let (county0, city0) = (out(&county), out(&city));
    std::thread::sleep(Duration::from_secs(3));
    let (idle_county, idle_city) = (out(&county) - county0, out(&city) - city0);
    let venue_in = metric(&county, "yunshi_packets_total{direction=\"in\",kind=\"video\"}");

    // One viewer in the province: only the main venue crosses, both links.
    let (mut v, offer) = Endpoint::offer(false);
    let (_, answer) = province.post_sdp("/whep/conf", &pt, &offer);
    v.accept_answer(&answer);
    let (tx, rx) = mpsc::channel();
    let viewer = v.run(Duration::from_secs(60), None, 0, tx, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let (county1, city1, in1) =
        (out(&county), out(&city), metric(&county, "yunshi_packets_total{direction=\"in\",kind=\"video\"}"));
    std::thread::sleep(Duration::from_secs(4));
    let watched_county = out(&county) - county1;
    let watched_city = out(&city) - city1;
    let both_venues_in = metric(&county, "yunshi_packets_total{direction=\"in\",kind=\"video\"}") - in1;
    stop.store(true, Ordering::Relaxed);
    viewer.join().unwrap();
    for (h, _) in publishers {
        h.join().unwrap();
    }
    let received = rx.try_iter().filter(|r| matches!(r, Received::Video { .. })).count();
    println!(
        "unwatched: county sent {idle_county}, city {idle_city} video packets in 3 s (venues had sent {venue_in}); \
         watched: county {watched_county}, city {watched_city} in 4 s while the venues sent {both_venues_in}; viewer got {received}"
    );
    assert!(idle_county <= 5.0 && idle_city <= 5.0, "unwatched venues crossed: county {idle_county}, city {idle_city}");
    assert!(received >= 60, "the province viewer got {received} video packets");
    // One of the two venues crosses (half of what they send), not both.
    assert!(watched_county > both_venues_in * 0.3, "county sent {watched_county} of {both_venues_in}");
    assert!(
        watched_county < both_venues_in * 0.7,
        "county sent {watched_county} of {both_venues_in}: both venues crossed"
    );
    assert!(watched_city < both_venues_in * 0.7, "city sent {watched_city} of {both_venues_in}");
}

#[test]
fn the_chair_goes_down_a_link_only_while_someone_below_watches() {
    use common::rtc_client::{Endpoint, Received};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    let Levels { province, city, county, pt, kt, .. } = three_levels_with_room("conf");
    // A venue in the county opens the room by publishing (its link up joins the city's room,
    // and the city's the province's; a WHIP publisher receives nothing), then the province's
    // chair publishes.
    let stop = Arc::new(AtomicBool::new(false));
    let publish = |s: &Server, token: &str| {
        let (mut p, offer) = Endpoint::offer(true);
        let (location, answer) = s.post_sdp("/whip/conf", token, &offer);
        p.accept_answer(&answer);
        let (tx, rx) = mpsc::channel();
        (location, p.run(Duration::from_secs(60), Some(str0m::format::Codec::Vp8), 0, tx, stop.clone()), rx)
    };
    let (venue_at, venue, _vrx) = publish(&county, &kt);
    wait_for("the county's room reaches the province", Duration::from_secs(15), || {
        let m = members(&province, &pt, "conf");
        (m.to_string().contains("cascade:city"), m)
    });
    let (_, chair, _crx) = publish(&province, &pt);
    let av = vec!["audio".to_string(), "video".to_string()];
    wait_for("the chair is known two levels down", Duration::from_secs(15), || {
        let t = tracks_of(&county, &kt, "conf", "cascade:parent");
        (t == av, members(&county, &kt, "conf"))
    });
    wait_for("and named as the province's", Duration::from_secs(5), || {
        let s = sources_of(&county, &kt, "conf", "cascade:parent");
        (s == vec!["province/admin (whip)".to_string(); 2], members(&county, &kt, "conf"))
    });
    let out = |s: &Server| metric(s, "yunshi_packets_total{direction=\"out\",kind=\"video\"}");
    let sent_over = |secs: u64| {
        let (p0, c0) = (out(&province), out(&city));
        std::thread::sleep(Duration::from_secs(secs));
        (out(&province) - p0, out(&city) - c0)
    };
    let unwatched = sent_over(3);

    // A viewer in the county watches the room's main stream: the county's own venue (it
    // published first), so the chair still stays above.
    let (mut v, offer) = Endpoint::offer(false);
    let (_, answer) = county.post_sdp("/whep/conf", &kt, &offer);
    v.accept_answer(&answer);
    let (tx, rx) = mpsc::channel();
    let viewer = v.run(Duration::from_secs(60), None, 0, tx, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let venue_watched = sent_over(3);

    // The venue leaves: the main stream is the chair now, and it comes down both links.
    assert_eq!(county.request("DELETE", &venue_at, Some(&kt), None, b"").0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let _ = rx.try_iter().count();
    let chair_watched = sent_over(4);
    let received = rx.try_iter().filter(|r| matches!(r, Received::Video { .. })).count();
    stop.store(true, Ordering::Relaxed);
    for h in [viewer, chair, venue] {
        h.join().unwrap();
    }
    println!(
        "video packets sent by province / city: nobody watching {unwatched:?} in 3 s; the county watching its own venue \
         {venue_watched:?} in 3 s; the county watching the chair {chair_watched:?} in 4 s, its viewer got {received}"
    );
    assert!(unwatched.0 <= 5.0 && unwatched.1 <= 5.0, "the chair crossed with nobody below watching: {unwatched:?}");
    assert!(venue_watched.0 <= 5.0, "the chair crossed while the county watched its own venue: {venue_watched:?}");
    assert!(
        chair_watched.0 >= 60.0 && chair_watched.1 >= 60.0,
        "the chair did not come down both links: {chair_watched:?}"
    );
    assert!(received >= 60, "the county viewer got {received} video packets of the chair");
}

/// A simulcast venue crosses each link whole (all three streams), so every node still chooses
/// a stream per viewer: a small player in the city and one in the province get the lowest
/// stream, full-size ones the top, over one hop and over two. The county sends each of its
/// publisher's packets up once, not one stream of three. When the full-size players leave, each
/// node's dynacast goes back down the links: only the lowest stream still crosses.
#[test]
fn simulcast_crosses_links_whole_and_each_node_selects_per_viewer() {
    use std::sync::atomic::Ordering;

    let Levels { province, city, county, pt, ct, kt, .. } = three_levels_with_room("sim");
    let (pub_thread, pub_stop) = simulcast_publisher(&county, &kt, "sim");
    let av = vec!["audio".to_string(), "video".to_string()];
    wait_for("the county's tracks in the province's room, two hops up", Duration::from_secs(15), || {
        let t = tracks_of(&province, &pt, "sim", "cascade:city");
        (t == av, members(&province, &pt, "sim"))
    });

    let viewer = |s: &Server, token: &str, small: bool| whep_viewer(s, token, "sim", small);
    let county_video =
        |dir: &str| metric(&county, &format!("yunshi_packets_total{{direction=\"{dir}\",kind=\"video\"}}"));
    let measure = |secs: u64| {
        let (in0, out0) = (county_video("in"), county_video("out"));
        std::thread::sleep(Duration::from_secs(secs));
        (county_video("in") - in0, county_video("out") - out0)
    };
    let viewers = [
        ("city, full size", viewer(&city, &ct, false), 2u8),
        ("city, 180 px", viewer(&city, &ct, true), 0),
        ("province, full size", viewer(&province, &pt, false), 2),
        ("province, 180 px", viewer(&province, &pt, true), 0),
    ];
    // Give every viewer time to settle on its stream, then measure the county's link.
    std::thread::sleep(Duration::from_secs(4));
    let full: Vec<_> = viewers.iter().filter(|v| v.2 == 2).map(|(at, v, _)| (*at, &v.1)).collect();
    let (settled, (county_in, county_out)) = window_on_top_stream(&full, 4, measure);

    let mut small = Vec::new();
    for (at, (h, rx, stop, location), want) in viewers {
        if want == 0 {
            check_streams(at, &rx, want, settled);
            small.push((at, h, rx, stop));
        } else {
            // The full-size players leave.
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap();
            let s = if at.starts_with("city") { &city } else { &province };
            let t = if at.starts_with("city") { &ct } else { &pt };
            let (status, _, _) = s.request("DELETE", &location, Some(t), None, b"");
            assert_eq!(status, 200);
        }
    }
    // All three streams went up once each (out ≈ in), not the one the first viewer wanted.
    assert!(county_in > 300.0, "county received {county_in} video packets");
    assert!(
        county_out >= county_in * 0.9 && county_out <= county_in * 1.2,
        "county sent {county_out} video packets up for {county_in} received"
    );
    println!("county: {county_in} video packets in, {county_out} out in 4 s (every stream, once)");

    // Each node lowers what it asks of the link below 3 s after demand fell (dynacast's delay),
    // the province's reaching the county through the city: then only the lowest stream, a
    // third of what the publisher sends, crosses.
    let lowered = wait_for("only the lowest stream leaves the county", Duration::from_secs(15), || {
        let (i, o) = measure(1);
        (i > 60.0 && o <= i * 0.4, serde_json::json!({"in": i, "out": o}))
    });
    let (county_in, county_out) = measure(3);
    assert!(
        county_out >= county_in * 0.28 && county_out <= county_in * 0.4,
        "county sent {county_out} video packets up for {county_in} received, with only small players above"
    );
    println!(
        "full-size players gone: within {lowered:?} the county sends {county_out} of {county_in} video packets up"
    );

    // A full-size player comes back two hops up: raising is at once, hop by hop, and the top
    // stream starts again on a keyframe the province's request brought up from the publisher.
    let (h, rx, stop, _) = viewer(&province, &pt, false);
    let first_top = first_top_stream(&rx, Instant::now(), Duration::from_secs(8))
        .expect("the top stream reaches a new full-size player two hops up within 8 s");
    // Counted over 3 s windows (about 90 packets; 60 wanted): over 2 s, as before, the count
    // expected was 61, and one stall of 0.4 s on a loaded CI machine (ten of these tests run at
    // once on two cores) failed it with 49.
    std::thread::sleep(Duration::from_secs(1));
    let (since, ()) = window_on_top_stream(&[("province, full size again", &rx)], 3, |secs| {
        std::thread::sleep(Duration::from_secs(secs))
    });
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    println!("a full-size player two hops up gets the top stream {first_top:?} after its WHEP POST");
    pub_stop.store(true, Ordering::Relaxed);
    pub_thread.join().unwrap();
    for (at, h, rx, stop) in small {
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        check_streams(at, &rx, 0, since);
    }
    let _ = (province, city, county);
}

/// A WHIP publisher of VP8 in three simulcast streams (and Opus) in `room`, until its stop flag.
fn simulcast_publisher(
    s: &Server,
    token: &str,
    room: &str,
) -> (std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    simulcast_publisher_on("127.0.0.1", s, token, room)
}

/// As `simulcast_publisher`, from the local address `ip`.
fn simulcast_publisher_on(
    ip: &str,
    s: &Server,
    token: &str,
    room: &str,
) -> (std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut publisher, offer) = common::rtc_client::Endpoint::offer_on(ip, true, true, false, 111);
    let (_, answer) = s.post_sdp(&format!("/whip/{room}"), token, &offer);
    publisher.accept_answer(&answer);
    // What a WHIP publisher receives (nothing) is not looked at.
    let (tx, _) = std::sync::mpsc::channel();
    let codec = Some(str0m::format::Codec::Vp8);
    // Long enough for the slowest test's windows; every test stops it when done.
    (publisher.run(Duration::from_secs(240), codec, 0, tx, stop.clone()), stop)
}

/// How long after `since` a player's first packet of the top stream (2) came, within `limit`;
/// it must start on a keyframe.
fn first_top_stream(
    rx: &std::sync::mpsc::Receiver<common::rtc_client::Received>,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    use common::rtc_client::{stream_of, Received};
    while since.elapsed() < limit {
        if let Ok(Received::Video { counter, keyframe, at }) = rx.recv_timeout(Duration::from_millis(100)) {
            if stream_of(counter) == 2 {
                assert!(keyframe, "the top stream came back on a delta frame");
                return Some(at.saturating_duration_since(since));
            }
        }
    }
    None
}

type Viewer = (
    std::thread::JoinHandle<()>,
    std::sync::mpsc::Receiver<common::rtc_client::Received>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    String,
);

/// A WHEP viewer of `room`; a `small` one tells the server its player is 180 px high (WHEP's
/// layer extension, at the URL the answer's Link header names). Runs until its stop flag.
fn whep_viewer(s: &Server, token: &str, room: &str, small: bool) -> Viewer {
    whep_viewer_on("127.0.0.1", s, token, room, small)
}

/// As `whep_viewer`, from the local address `ip`.
fn whep_viewer_on(ip: &str, s: &Server, token: &str, room: &str, small: bool) -> Viewer {
    use common::rtc_client::Endpoint;
    let (mut v, offer) = Endpoint::offer_on(ip, false, false, false, 111);
    let (status, headers, body) =
        s.request("POST", &format!("/whep/{room}"), Some(token), Some("application/sdp"), offer.as_bytes());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let location = header("location").expect("Location");
    let link = header("link").expect("a Link header for the layer extension");
    assert_eq!(link, format!("<{location}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\""));
    v.accept_answer(&String::from_utf8(body).unwrap());
    if small {
        let layer = format!("{location}/layer");
        let (status, _, _) = s.request("POST", &layer, Some(token), Some("application/json"), br#"{"maxHeight":180}"#);
        assert_eq!(status, 204);
        // A fixed encoding is not ours to take: refused with a JSON error, nothing changed.
        let (status, _, body) =
            s.request("POST", &layer, Some(token), Some("application/json"), br#"{"encodingId":"f"}"#);
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        let err: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert_eq!(err["error"], "bad_request", "{err}");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    (v.run(Duration::from_secs(90), None, 0, tx, stop.clone()), rx, stop, location)
}

/// What a viewer received since `since`: the streams seen and how many video packets; the
/// payloads intact and stream `want`'s frames in order (asserted).
fn streams_since(
    at: &str,
    rx: &std::sync::mpsc::Receiver<common::rtc_client::Received>,
    want: u8,
    since: Instant,
) -> (std::collections::BTreeSet<u8>, usize) {
    use common::rtc_client::{stream_of, Received};
    let mut seen = std::collections::BTreeSet::new();
    let (mut n, mut corrupt) = (0, 0);
    let mut last_counter: Option<u64> = None;
    for r in rx.try_iter() {
        match r {
            Received::Video { counter, at: when, .. } if when >= since => {
                seen.insert(stream_of(counter));
                n += 1;
                if stream_of(counter) == want {
                    assert!(last_counter.is_none_or(|l| counter > l), "{at}: frames out of order");
                    last_counter = Some(counter);
                }
            }
            Received::Corrupt => corrupt += 1,
            _ => {}
        }
    }
    assert_eq!(corrupt, 0, "{at}: corrupt payloads");
    (seen, n)
}

/// What a viewer received since `since`: intact, in order, enough, and from stream `want` only.
fn check_streams(at: &str, rx: &std::sync::mpsc::Receiver<common::rtc_client::Received>, want: u8, since: Instant) {
    let (seen, n) = streams_since(at, rx, want, since);
    assert!(n >= 60, "{at}: {n} video packets");
    assert_eq!(seen, std::collections::BTreeSet::from([want]), "{at}: streams received once settled");
    println!("{at}: stream {want} only, {n} packets");
}

/// A window of `secs` in which every full-size player (`full`) received the top stream (2)
/// alone, intact and in order, and what `measure` read over it; tried up to five times.
///
/// A full-size player's layer follows its own bandwidth estimate, which a loaded CI machine
/// (three nodes and other tests on two cores) can dip for a moment: a fixed window that caught
/// such a dip saw streams 0 and 2 on two CI runs. What the cascade tests are about is that every
/// stream crosses the links and each node selects per viewer, so the players must settle on the
/// top stream for a whole window, not necessarily the first one.
fn window_on_top_stream<T>(
    full: &[(&str, &std::sync::mpsc::Receiver<common::rtc_client::Received>)],
    secs: u64,
    mut measure: impl FnMut(u64) -> T,
) -> (Instant, T) {
    let mut unsettled = Vec::new();
    loop {
        let since = Instant::now();
        let m = measure(secs);
        let mut off = Vec::new();
        for (at, rx) in full {
            let (seen, n) = streams_since(at, rx, 2, since);
            if seen != std::collections::BTreeSet::from([2]) || n < 60 {
                off.push(format!("{at}: {seen:?}, {n} packets"));
            }
        }
        if off.is_empty() {
            for (at, _) in full {
                println!("{at}: stream 2 only (after {} unsettled windows)", unsettled.len());
            }
            return (since, m);
        }
        unsettled.push(off);
        assert!(unsettled.len() < 5, "full-size players never on the top stream alone for {secs} s: {unsettled:?}");
    }
}

/// The chair's simulcast goes down whole as well, and the county's dynacast goes back up the
/// links (`link_layers`): with only a small player below, the province sends one stream down.
#[test]
fn simulcast_goes_down_whole_and_demand_for_layers_goes_back_up() {
    use std::sync::atomic::Ordering;

    let Levels { province, city, county, pt, ct, kt, .. } = three_levels_with_room("chair");
    let (chair_thread, pub_stop) = simulcast_publisher(&province, &pt, "chair");
    // Viewers below open the rooms there (and so their links up).
    let (full, small) = (whep_viewer(&county, &kt, "chair", false), whep_viewer(&county, &kt, "chair", true));
    let city_small = whep_viewer(&city, &ct, "chair", true);
    let av = vec!["audio".to_string(), "video".to_string()];
    wait_for("the chair's tracks in the county's room, two hops down", Duration::from_secs(15), || {
        let t = tracks_of(&county, &kt, "chair", "cascade:parent");
        (t == av, members(&county, &kt, "chair"))
    });
    let video = |dir: &str| metric(&province, &format!("yunshi_packets_total{{direction=\"{dir}\",kind=\"video\"}}"));
    let measure = |secs: u64| {
        let (in0, out0) = (video("in"), video("out"));
        std::thread::sleep(Duration::from_secs(secs));
        (video("in") - in0, video("out") - out0)
    };
    // The full-size player climbs to the top stream as its estimate grows; on a loaded machine
    // that takes longer than on an idle one, so the window opens once it is there (a window that
    // caught the climb saw streams 0 and 2 on one CI run).
    first_top_stream(&full.1, Instant::now(), Duration::from_secs(30))
        .expect("the top stream at the county within 30 s");
    std::thread::sleep(Duration::from_secs(2));
    let (settled, (p_in, p_out)) = window_on_top_stream(&[("county, full size", &full.1)], 3, measure);
    check_streams("county, 180 px", &small.1, 0, settled);
    check_streams("city, 180 px", &city_small.1, 0, settled);
    assert!(p_in > 200.0 && p_out >= p_in * 0.9 && p_out <= p_in * 1.2, "province: {p_in} in, {p_out} out");
    println!("province: {p_in} video packets in, {p_out} down in 3 s (every stream, once)");

    // The full-size player below leaves: the county's and then the city's dynacast travel up.
    let (h, _, stop, location) = full;
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert_eq!(county.request("DELETE", &location, Some(&kt), None, b"").0, 200);
    let lowered = wait_for("only the lowest stream leaves the province", Duration::from_secs(15), || {
        let (i, o) = measure(1);
        (i > 60.0 && o <= i * 0.4, serde_json::json!({"in": i, "out": o}))
    });
    let since = Instant::now();
    let (p_in, p_out) = measure(3);
    assert!(p_out >= p_in * 0.28 && p_out <= p_in * 0.4, "province: {p_in} in, {p_out} down with small players only");
    println!("full-size player gone: within {lowered:?} the province sends {p_out} of {p_in} video packets down");
    pub_stop.store(true, Ordering::Relaxed);
    chair_thread.join().unwrap();
    for (at, (h, rx, stop, _)) in [("county, 180 px", small), ("city, 180 px", city_small)] {
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        check_streams(at, &rx, 0, since);
    }
    let _ = (province, city, county, ct);
}

/// A cascade link through a real bottleneck: the county node runs in a network namespace whose
/// uplink the kernel caps (`tc tbf`). The link's sending end estimates what the path carries and
/// grants the county's simulcast venue only the streams that fit (each costing the streams
/// below it as well, since the link carries them all), so the city's full-size player gets a
/// lower stream intact rather than the top one broken; with the cap gone the top stream comes
/// back, and with it back the link steps down again.
#[test]
fn a_capped_link_carries_the_streams_that_fit() {
    use common::rtc_client::{stream_of, Received};
    use std::sync::atomic::Ordering;

    if let Some(reason) = Netns::unavailable() {
        println!("SKIPPED a_capped_link_carries_the_streams_that_fit: {reason}");
        return;
    }
    let ns = Netns::create("cap");
    // The test publisher's three streams cost ~235 kbit/s each on the wire and its audio ~80
    // (the allocator reserves 80): stream 0 and audio need ~315 kbit/s, stream 1 on top of them
    // ~630 to be granted (15 % headroom), all three ~900. The cap lets stream 0 through only,
    // with room for the estimate to wobble: at 450 kbit/s it dipped far enough now and then to
    // pause stream 0 for a second or two (docs/benchmarks.md).
    const CAP_KBPS: u32 = 550;
    ns.cap_egress(Some(CAP_KBPS));
    let c_port = free_tcp_port();
    let city = node_in(None, &ns.host_ip, "city", c_port, None);
    let county = node_in(Some(&ns), &ns.ns_ip, "county", free_tcp_port(), Some(format!("{}:{c_port}", ns.host_ip)));
    let (ct, kt) = (city.admin_token(), county.admin_token());
    city.create_room(&ct, "cap");
    county.create_room(&kt, "cap");
    wait_for("the county is up below the city", Duration::from_secs(15), || {
        let v = tree(&city, &ct);
        (child(&v, "county").is_some_and(|k| k["state"] == "up"), v)
    });
    let (pub_thread, pub_stop) = simulcast_publisher_on(&ns.host_ip, &county, &kt, "cap");
    let av = vec!["audio".to_string(), "video".to_string()];
    wait_for("the county's tracks in the city's room", Duration::from_secs(15), || {
        let t = tracks_of(&city, &ct, "cap", "cascade:county");
        (t == av, members(&city, &ct, "cap"))
    });
    let (h, rx, stop, _) = whep_viewer_on(&ns.host_ip, &city, &ct, "cap", false);
    let county_video =
        |dir: &str| metric(&county, &format!("yunshi_packets_total{{direction=\"{dir}\",kind=\"video\"}}"));
    let measure = |secs: u64| {
        let (in0, out0, drops0) = (county_video("in"), county_video("out"), ns.cap_drops());
        std::thread::sleep(Duration::from_secs(secs));
        (county_video("in") - in0, county_video("out") - out0, ns.cap_drops() - drops0)
    };
    // What the player got since `since`: packets per stream.
    let received = |since: Instant| {
        let mut per_stream = [0u32; 3];
        for r in rx.try_iter() {
            if let Received::Video { counter, at, .. } = r {
                if at >= since {
                    per_stream[(stream_of(counter) as usize).min(2)] += 1;
                }
            }
        }
        per_stream
    };

    // Windows of `secs` until one in which stream 0 alone crosses (a third of what the venue
    // sends), the cap drops at most 10 datagrams and the player gets at least `least` packets
    // of stream 0 and none above; every window as (sent up, in, dropped at the cap, player got).
    let stream_0_whole = |what: &str, limit: u64, secs: u64, least: u32| {
        let mut windows = Vec::new();
        let took = wait_for(what, Duration::from_secs(limit), || {
            let since = Instant::now();
            let (i, o, drops) = measure(secs);
            let got = received(since);
            windows.push((o, i, drops, got));
            let whole = i > 60.0 * secs as f64
                && o >= i * 0.25
                && o <= i * 0.42
                && drops <= 10
                && got[1..] == [0, 0]
                && got[0] >= least;
            (whole, serde_json::json!({"windows (out, in, dropped at the cap, player got)": windows}))
        });
        (took, windows)
    };
    // Capped: the link settles on stream 0, and the player on stream 0, intact, for a whole
    // window of 5 s. The first windows may not be: a try at stream 1 that the link gives up
    // again (its estimate wobbles) leaves the player waiting on stream 1 until it has been gone
    // for half a second, and on a loaded machine the estimate can dip below stream 0 for a
    // moment. Every window is printed.
    // ~150 packets of stream 0 in 5 s.
    let (settled, windows) = stream_0_whole("the link carries stream 0 alone, whole, under the cap", 45, 5, 135);
    println!(
        "capped at {CAP_KBPS} kbit/s: settled after {settled:?}; windows of 5 s (video packets the county sent \
         up, video packets in, datagrams dropped at the cap, packets the player got per stream): {windows:?}"
    );

    // The cap lifted: the estimate grows, and the top stream crosses again.
    ns.cap_egress(None);
    let first_top = first_top_stream(&rx, Instant::now(), Duration::from_secs(30))
        .expect("the top stream reaches the player within 30 s of the cap going");
    let mut windows = Vec::new();
    wait_for("every stream crosses with the cap gone", Duration::from_secs(20), || {
        let (i, o, _) = measure(3);
        windows.push((o, i));
        (i > 180.0 && o >= i * 0.9, serde_json::json!({"windows (out, in)": windows}))
    });
    println!(
        "cap lifted: the top stream reached the player after {first_top:?}; windows of 3 s (out, in): {windows:?}"
    );

    // Capped again: the link steps down to what fits. Three streams (~900 kbit/s) meet the
    // cap at once, the bucket drops a burst and the estimate falls far, at times below what
    // stream 0 and audio need (the lowest stream is then paused until the estimate has grown
    // back and proven itself): how long that takes depends on the machine's load (53 of 369
    // packets crossed in the first 4 s once on a loaded CI run). So the player has up to 30 s
    // to be back on stream 0: a 4 s window in which stream 0 alone crosses, the cap drops at
    // most 10 datagrams and the player gets stream 0 nearly whole.
    ns.cap_egress(Some(CAP_KBPS));
    let down = wait_for("the link steps down under the cap again", Duration::from_secs(20), || {
        let (i, o, drops) = measure(1);
        (i > 60.0 && o <= i * 0.42, serde_json::json!({"in": i, "out": o, "dropped at the cap": drops}))
    });
    std::thread::sleep(Duration::from_secs(2));
    let (back, windows) = stream_0_whole("the player back on stream 0, whole", 30, 4, 105);
    println!(
        "capped again: down after {down:?}; the player whole on stream 0 after {back:?} more; windows of 4 s \
         (sent up, in, dropped at the cap, player got per stream): {windows:?}"
    );
    stop.store(true, Ordering::Relaxed);
    pub_stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    pub_thread.join().unwrap();
    let _ = (city, county);
}

/// A lossy path between two nodes: 10 % of the media datagrams the county sends the city are
/// dropped (nftables in the county's network namespace), and the link's NACK/RTX repairs them,
/// so a viewer in the city gets the venue's video whole.
#[test]
fn a_lossy_link_is_repaired() {
    use common::rtc_client::{Endpoint, Received};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    if let Some(reason) = Netns::unavailable() {
        println!("SKIPPED a_lossy_link_is_repaired: {reason}");
        return;
    }
    let ns = Netns::create("loss");
    let c_port = free_tcp_port();
    let city = node_in(None, &ns.host_ip, "city", c_port, None);
    let county = node_in(Some(&ns), &ns.ns_ip, "county", free_tcp_port(), Some(format!("{}:{c_port}", ns.host_ip)));
    let (ct, kt) = (city.admin_token(), county.admin_token());
    city.create_room(&ct, "lossy");
    county.create_room(&kt, "lossy");
    wait_for("the county is up below the city", Duration::from_secs(15), || {
        let v = tree(&city, &ct);
        (child(&v, "county").is_some_and(|k| k["state"] == "up"), v)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (mut publisher, offer) = Endpoint::offer_on(&ns.host_ip, true, false, false, 111);
    let (_, answer) = county.post_sdp("/whip/lossy", &kt, &offer);
    publisher.accept_answer(&answer);
    let (tx, _prx) = mpsc::channel();
    let pub_thread = publisher.run(Duration::from_secs(60), Some(str0m::format::Codec::Vp8), 0, tx, stop.clone());
    wait_for("the county's tracks in the city's room", Duration::from_secs(15), || {
        let t = tracks_of(&city, &ct, "lossy", "cascade:county");
        (t == ["audio", "video"], members(&city, &ct, "lossy"))
    });
    let (h, rx, viewer_stop, _) = whep_viewer_on(&ns.host_ip, &city, &ct, "lossy", false);
    let first = rx.iter().find(|r| matches!(r, Received::Video { .. }));
    assert!(first.is_some(), "the city's viewer got no video");

    if let Err(e) = ns.lose_egress_media(&ns.host_ip, 300, 10) {
        println!("SKIPPED a_lossy_link_is_repaired: nftables: {e}");
        return;
    }
    let nacks = || metric(&county, "yunshi_nacks_total{direction=\"rx\"}");
    let nacks_before = nacks();
    std::thread::sleep(Duration::from_secs(1));
    let _ = rx.try_iter().count();
    let since = Instant::now();
    let lost_before = ns.lost();
    std::thread::sleep(Duration::from_secs(8));
    let lost = ns.lost() - lost_before;
    // What reached the viewer (a repair may still be on its way for the newest packets).
    let counters: std::collections::BTreeSet<u64> = rx
        .try_iter()
        .filter_map(|r| match r {
            Received::Video { counter, at, .. } if at >= since => Some(counter),
            _ => None,
        })
        .collect();
    viewer_stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    pub_thread.join().unwrap();
    // The last third of a second may still have repairs on their way: not counted.
    let (lo, hi) = (*counters.first().unwrap(), counters.last().unwrap().saturating_sub(10));
    let span = (hi - lo + 1) as usize;
    let missing = span - counters.range(lo..=hi).count();
    let nacked = nacks() - nacks_before;
    println!(
        "10 % media loss on the county → city path: {lost} datagrams dropped in 8 s, the city NACKed {nacked}; \
         the city's viewer is missing {missing} of {span} video packets"
    );
    assert!(lost >= 15, "the loss is real: {lost} dropped");
    assert!(nacked >= 10.0, "the city asked for repairs: {nacked} NACKs");
    assert!(missing * 100 <= span, "more than 1 % missing after repair: {missing} of {span}");
}
