//! The load tool against the real server, small: a 3-person meeting over the conference
//! WebSocket and a 1 → 4 webinar over WHIP/WHEP, with real H.264 (two simulcast encodings) and
//! Opus. Every subscriber must get every publisher's audio and video, nothing lost on loopback,
//! the highest simulcast encoding, keyframes first, and capture times carried end to end.
//! Correctness only: speed is `make bench-capacity`'s job.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Server;
use loadtest::media::{encode_audio, encode_video, VideoSpec};
use loadtest::peer::Media;
use loadtest::report::Totals;
use loadtest::scenario::{meeting, webinar, Harness, Target};
use loadtest::server::Yunshi;

const SECONDS: u64 = 5;

fn check(what: &str, t: &Totals, endpoints: usize, video_streams: usize) {
    let table = t.table();
    assert_eq!(t.failed, 0, "{what}: failures\n{table}");
    assert_eq!(t.connected, endpoints, "{what}: connected\n{table}");
    assert_eq!(t.video_streams, video_streams, "{what}: video streams\n{table}");
    assert_eq!((t.video_lost, t.audio_lost), (0, 0), "{what}: loss on loopback\n{table}");
    // Audio: 50 packets/s per stream, 2 streams per video stream's pair; allow start/stop slack.
    let audio_min = (video_streams as u64) * 50 * SECONDS * 8 / 10;
    assert!(t.audio_packets >= audio_min, "{what}: {} audio packets < {audio_min}\n{table}", t.audio_packets);
    let video_min = (video_streams as u64) * 15 * SECONDS * 8 / 10;
    assert!(t.video_packets >= video_min, "{what}: {} video packets < {video_min}\n{table}", t.video_packets);
    // Everyone got the top encoding (320x180 of 160x90 + 320x180), from a keyframe.
    assert_eq!(t.resolutions.get("320x180"), Some(&video_streams), "{what}: layers\n{table}");
    assert_eq!(t.join_missing, 0, "{what}: subscribers without a keyframe\n{table}");
    // Every packet carried the publisher's capture time through the SFU.
    assert_eq!(t.unstamped, 0, "{what}: packets without abs-capture-time\n{table}");
    assert_eq!(t.latency_video.count(), t.video_packets, "{what}: latency samples\n{table}");
    assert!(t.server_cpu.is_some(), "{what}: server CPU read from /proc");
}

#[test]
fn loadtest_meeting_and_webinar_deliver_everything_on_loopback() {
    let server = Server::start("loadtest");
    let spec = VideoSpec { width: 320, height: 180, fps: 15, kbps: 300, layers: 2, seconds: 2, gop: 15 };
    let media =
        Arc::new(Media { video: encode_video(&spec).unwrap(), audio: encode_audio(1, 24).unwrap(), fps: spec.fps });
    let target = Target {
        server: format!("http://{}", server.http),
        token: server.admin_token(),
        server_pid: Some(server.child.id()),
    };
    let mut h = Harness::new(target, media, 1).unwrap();
    h.progress = false;

    let m = meeting::run(&mut h, 1, 3, Duration::from_secs(1), Duration::from_secs(SECONDS)).unwrap();
    eprintln!("meeting 1×3:\n{}", m.table());
    // 3 publishers + 3 subscribe connections; each participant receives the 2 others.
    check("meeting", &m, 6, 6);

    let mut yunshi = Yunshi { server: h.target.server.clone(), token: h.target.token.clone() };
    let w = webinar::run(&mut h, &mut yunshi, "smoke-webinar", 4, Duration::from_secs(1), Duration::from_secs(SECONDS))
        .unwrap();
    eprintln!("webinar 1→4:\n{}", w.table());
    check("webinar", &w, 5, 4);
    h.stop();
}
