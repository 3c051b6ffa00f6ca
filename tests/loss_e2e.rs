//! Audio under downlink loss, through a lossy UDP relay in front of the viewer: RED with depth
//! adapted to the viewer's reported loss recovers far more frames than the publisher's own
//! single copy would, and far more than a viewer without RED gets.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::relay::{rewrite_candidate, LossyRelay};
use common::rtc_client::{Endpoint, Received};
use common::Server;
use str0m::format::Codec;

/// Distinct audio frames a viewer could play (primary or any redundant copy).
fn frames(rx: &mpsc::Receiver<Received>) -> BTreeSet<u64> {
    let mut got = BTreeSet::new();
    let mut depths = [0usize; 16];
    let mut corrupt = 0;
    while let Ok(r) = rx.try_recv() {
        if let Received::RedAudio { redundant, .. } = &r {
            depths[(*redundant).min(15)] += 1;
        }
        if let Received::Corrupt = &r {
            corrupt += 1;
        }
        match r {
            Received::Audio { counter, .. } => {
                got.insert(counter);
            }
            Received::RedAudio { counter, earlier, .. } => {
                got.insert(counter);
                got.extend(earlier);
            }
            _ => {}
        }
    }
    eprintln!("RED depths received: {depths:?}, corrupt: {corrupt}");
    got
}

#[test]
fn adaptive_red_recovers_audio_at_40_percent_downlink_loss() {
    let server = Server::start("loss");
    let token = server.admin_token();
    server.create_room(&token, "loss");
    let stop = Arc::new(AtomicBool::new(false));
    let (mut publisher, offer) = Endpoint::offer_opts(true, false, true);
    let answer = server.post_sdp("/whip/loss", &token, &offer).1;
    publisher.accept_answer(&answer);
    let (ptx, _prx) = mpsc::channel();
    let pub_thread = publisher.run(Duration::from_secs(30), Some(Codec::Vp8), 30, ptx, stop.clone());

    // Viewers behind relays; the room's worker port is the server's first UDP port or the next.
    let mut viewers = Vec::new();
    for red in [true, false] {
        let (mut v, offer) = Endpoint::offer_opts(false, false, red);
        let answer = server.post_sdp("/whep/loss", &token, &offer).1;
        let port = (0..2u16)
            .map(|i| server.udp_port + i)
            .find(|p| answer.contains(&format!(" {p} typ")))
            .expect("server candidate in answer");
        let relay = LossyRelay::start(format!("127.0.0.1:{port}").parse().unwrap());
        v.accept_answer(&rewrite_candidate(&answer, port, relay.addr));
        let (tx, rx) = mpsc::channel();
        viewers.push((red, relay, v.run(Duration::from_secs(30), None, 0, tx, stop.clone()), rx));
    }
    // Connect cleanly, then 40 % loss towards the viewers. Give the receiver reports 3 s to
    // raise the redundancy, then count which frames could be played over 10 s.
    std::thread::sleep(Duration::from_secs(2));
    for (_, relay, _, _) in &viewers {
        relay.set_loss(40);
    }
    std::thread::sleep(Duration::from_secs(3));
    for (_, _, _, rx) in &viewers {
        frames(rx);
    }
    std::thread::sleep(Duration::from_secs(10));
    let mut results = Vec::new();
    for (red, _, _, rx) in &viewers {
        let got = frames(rx);
        let (lo, hi) = (*got.iter().next().unwrap(), *got.iter().next_back().unwrap());
        let share = got.len() as f64 / (hi - lo + 1) as f64;
        eprintln!(
            "40% downlink loss, red={red}: {} of {} frames playable ({:.1} %)",
            got.len(),
            hi - lo + 1,
            share * 100.0
        );
        results.push((*red, share));
    }
    stop.store(true, Ordering::Relaxed);
    pub_thread.join().unwrap();
    for (_, _, h, _) in viewers {
        h.join().unwrap();
    }
    let (red_share, plain_share) = (results[0].1, results[1].1);
    // Without RED about 60 % arrive; with the publisher's single copy about 84 % would; with
    // redundancy adapted to 40 % loss (3 copies) about 97 %.
    assert!(plain_share < 0.75, "plain viewer got {plain_share:.3}: is the relay dropping?");
    assert!(red_share >= 0.93, "RED viewer recovered only {red_share:.3} of frames");
}
