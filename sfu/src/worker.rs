//! A media worker: one thread, one UDP socket, every peer of the rooms pinned to it.
//!
//! The loop reads top to bottom: control commands, due timeouts, then the datagrams waiting
//! (one `recvmmsg`): recv → find peer (by source address, STUN by `accepts`) → `handle_input`
//! → drain `poll_output` → for RTP: forwarder decides → subscribers' `write_rtp` → drain them
//! → their datagrams join the send batch, which leaves in `sendmmsg` calls (`udp_batch`).
//! No locks and no actor messages on this path; events to the control plane are rare.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::{Event, IceConnectionState, Input, Output};
use tracing::{debug, info, warn};

use crate::allocate::{allocate, Grant};
use crate::codec::VideoCodec;
use crate::command::{EventSink, PeerKind, PeerPlace, SfuError, WorkerCommand, WorkerEvent};
use crate::dd_extension;
use crate::dtls_identity::DtlsIdentity;
use crate::dynacast::PublishLayers;
use crate::fast_map::FastMap;
use crate::fec::VideoFec;
use crate::forward::{Constraint, Forward, Forwarder, PacketMeta, TrackKind};
use crate::ids::{next_id, PeerId, RoomId, TrackId};
use crate::metrics::{WorkerMetrics, METRICS};
use crate::peer::{Features, Peer, Slot, WantedTrack};
use crate::speaker::SpeakerDetector;
use crate::udp_batch::{self, RecvBatch, SendBatch};
use crate::{red, repair};
use str0m::bwe::{Bitrate, BweKind};

/// Upper bound on how long a command waits while the socket is idle.
/// Socket buffers asked for, each way (see `udp_batch::grow_buffers`).
const SOCKET_BUFFER: usize = 8 << 20;
const IDLE_WAKE: Duration = Duration::from_millis(5);
/// How often rooms' active speakers are re-evaluated.
const SPEAKER_POLL: Duration = Duration::from_millis(200);
/// How often every receiver's bandwidth is re-shared (layer rates drift between estimates).
const ALLOCATE_EVERY: Duration = Duration::from_millis(250);
/// Bitrate reserved per received audio track before video is allocated, on the wire as the
/// estimate counts it: Chromium's Opus measured 78-82 kbit/s there (~40 kbit/s of payload
/// plus ~100 bytes of headers and extensions per 20-ms packet).
const AUDIO_RESERVE_BPS: u64 = 80_000;
/// An audio receiver report's loss counts until the next is due (str0m sends them every 5 s).
const AUDIO_LOSS_HOLD: Duration = Duration::from_secs(6);
/// Audio redundancy steps down at most this often once loss falls.
const RED_DECAY: Duration = Duration::from_secs(5);
/// Priority bonus for the active speaker's video.
const SPEAKER_PRIORITY: u32 = 1 << 20;

/// A handle the control plane keeps for each worker.
#[derive(Clone)]
pub struct WorkerHandle {
    pub index: usize,
    pub candidate: SocketAddr,
    tx: Sender<WorkerCommand>,
}

impl WorkerHandle {
    pub fn send(&self, cmd: WorkerCommand) -> Result<(), SfuError> {
        self.tx.send(cmd).map_err(|_| SfuError::WorkerGone)
    }
}

/// A published track as the worker knows it.
struct TrackSource {
    publisher: PeerId,
    mid: Mid,
    kind: TrackKind,
    params: Option<PayloadParams>,
    /// Simulcast RIDs, lowest quality first (their index is the stream index); empty when
    /// the track is a single stream.
    rids: Vec<Rid>,
    /// Audio: the last frames, for receivers that need more redundancy than the publisher sends.
    red_history: red::RedHistory,
    /// Simulcast video: which encodings the publisher keeps on.
    publish_layers: Option<PublishLayers>,
}

pub struct Worker {
    socket: UdpSocket,
    /// Where the media socket is bound (dialling peers bind theirs on the same address).
    bind: SocketAddr,
    /// Peers with a socket of their own (cascade links' child ends), with the address their
    /// datagrams arrive at (their ICE host candidate).
    dialling: Vec<(PeerId, SocketAddr)>,
    /// Scratch for reading those sockets and for waiting on all of them.
    dial_buf: Vec<u8>,
    poll_fds: Vec<libc::pollfd>,
    /// Datagrams on their way out, sent together (see `udp_batch`).
    send: SendBatch,
    /// Receive buffers, taken out while their datagrams are handled.
    recv: Option<Box<RecvBatch>>,
    /// Our host candidate; also the destination str0m expects on received datagrams.
    candidate: SocketAddr,
    commands: Receiver<WorkerCommand>,
    events: EventSink,
    /// Boxed: a peer is ~10.8 KB (str0m's `Rtc` inline), and a map of them inline kept up to
    /// half its slots empty at that size (1.4 MB for 61 peers) and moved them all when it grew.
    peers: FastMap<PeerId, Box<Peer>>,
    by_addr: HashMap<SocketAddr, PeerId>,
    timeouts: BinaryHeap<Reverse<(Instant, PeerId)>>,
    tracks: FastMap<TrackId, TrackSource>,
    forwarder: Forwarder<(PeerId, Mid)>,
    /// Subscribers written to while handling one input; drained afterwards.
    dirty: Vec<PeerId>,
    forwards: Vec<Forward<(PeerId, Mid)>>,
    metrics: WorkerMetrics,
    speakers: HashMap<RoomId, SpeakerDetector>,
    next_speaker_poll: Instant,
    /// Publisher peer of each room's active speaker, for allocation priority.
    speaker_peer: HashMap<RoomId, PeerId>,
    next_allocation: Instant,
    allocate_bandwidth: bool,
    video_fec: VideoFec,
    /// The DTLS certificate this worker's peers present (one per worker, renewed daily).
    dtls: DtlsIdentity,
}

fn unmappable_offer() -> SfuError {
    warn!("the media stack could not map an offer's payload types");
    SfuError::BadSdp("the offer's payload types cannot be mapped (one payload type for two codecs?)".into())
}

/// How a worker is set up.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    pub index: usize,
    pub bind: SocketAddr,
    /// Our ICE host candidate (the address clients reach).
    pub candidate: SocketAddr,
    /// Share each receiver's send-side bandwidth estimate among its video (TWCC BWE).
    pub allocate_bandwidth: bool,
    /// FEC on subscribers' video.
    pub video_fec: VideoFec,
    /// Keyframe requests to one publisher at most this often (subscribers' requests merged).
    pub keyframe_request_interval: Duration,
}

/// Bind and start a worker thread.
pub fn spawn_worker(config: WorkerConfig, events: EventSink) -> std::io::Result<WorkerHandle> {
    let WorkerConfig { index, bind, candidate, allocate_bandwidth, video_fec, keyframe_request_interval } = config;
    let socket = UdpSocket::bind(bind)?;
    let (rcvbuf, sndbuf) = udp_batch::grow_buffers(&socket, SOCKET_BUFFER);
    if rcvbuf < SOCKET_BUFFER {
        warn!(
            rcvbuf,
            "media socket receive buffer below {SOCKET_BUFFER} bytes: raise net.core.rmem_max (README, Deployment)"
        );
    }
    debug!(rcvbuf, sndbuf, "media socket buffers");
    let (tx, rx) = crossbeam_channel::unbounded();
    let worker = Worker {
        socket,
        bind,
        dialling: Vec::new(),
        dial_buf: vec![0; 2048],
        poll_fds: Vec::new(),
        send: SendBatch::default(),
        recv: Some(Box::default()),
        candidate,
        commands: rx,
        events,
        peers: FastMap::default(),
        by_addr: HashMap::new(),
        timeouts: BinaryHeap::new(),
        tracks: FastMap::default(),
        forwarder: Forwarder::with_keyframe_interval(keyframe_request_interval),
        dirty: Vec::new(),
        forwards: Vec::new(),
        metrics: WorkerMetrics::new(),
        speakers: HashMap::new(),
        next_speaker_poll: Instant::now(),
        speaker_peer: HashMap::new(),
        next_allocation: Instant::now(),
        allocate_bandwidth,
        video_fec,
        dtls: DtlsIdentity::new(Instant::now()),
    };
    std::thread::Builder::new().name(format!("media-{index}")).spawn(move || worker.run())?;
    info!(index, %bind, %candidate, "media worker started");
    Ok(WorkerHandle { index, candidate, tx })
}

impl Worker {
    fn run(mut self) {
        loop {
            // A bug must not take every room on this thread down with it: a panic while
            // handling one step is logged and counted, and the loop goes on.
            let step = catch_unwind(AssertUnwindSafe(|| self.step()));
            match step {
                Ok(true) => {}
                Ok(false) => {
                    info!("media worker stopping: control plane gone");
                    return;
                }
                Err(_) => {
                    tracing::error!("media worker recovered from a panic");
                    METRICS.dropped.with_label_values(&["worker_panic"]).inc();
                    self.dirty.clear();
                    self.peers.values_mut().for_each(|p| p.dirty = false);
                    self.recv.get_or_insert_with(Box::default);
                }
            }
        }
    }

    /// One turn of the loop: commands, timers, then the datagrams waiting (or a wait for them).
    fn step(&mut self) -> bool {
        if !self.handle_commands() {
            return false;
        }
        let now = Instant::now();
        self.handle_timeouts(now);
        if now >= self.next_speaker_poll {
            self.poll_speakers(now);
        }
        if now >= self.next_allocation {
            self.next_allocation = now + ALLOCATE_EVERY;
            let receivers: Vec<PeerId> =
                self.peers.values().filter(|p| p.estimates.latest().is_some()).map(|p| p.id).collect();
            for id in receivers {
                self.allocate(id, now);
            }
            self.drain_dirty();
            self.check_publish_layers(now);
        }
        let mut batch = self.recv.take().unwrap_or_default();
        let received = match batch.recv(&self.socket) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => 0,
            Err(e) => {
                warn!("udp recv failed: {e}");
                0
            }
        };
        for i in 0..received {
            if let Some((data, source)) = batch.get(i) {
                self.handle_datagram(data, source);
            }
        }
        self.recv = Some(batch);
        let received = received + self.receive_dialling();
        self.drain_dirty();
        self.flush_sends();
        if received == 0 {
            let wait = self
                .timeouts
                .peek()
                .map(|Reverse((t, _))| t.saturating_duration_since(Instant::now()))
                .unwrap_or(IDLE_WAKE)
                .min(IDLE_WAKE);
            if !wait.is_zero() {
                if self.dialling.is_empty() {
                    udp_batch::wait_readable(&self.socket, wait);
                } else {
                    self.wait_all(wait);
                }
            }
        }
        true
    }

    /// Datagrams waiting on dialling peers' own sockets, each handed to its peer. One `ppoll`
    /// finds the readable ones, so a node with many links does not try every socket each turn.
    fn receive_dialling(&mut self) -> usize {
        if self.dialling.is_empty() {
            return 0;
        }
        self.fill_poll_fds(false);
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid pollfds (sockets owned by live peers) and timespec; no signal mask change.
        let ready = unsafe {
            libc::ppoll(self.poll_fds.as_mut_ptr(), self.poll_fds.len() as libc::nfds_t, &zero, std::ptr::null())
        };
        if ready <= 0 {
            return 0;
        }
        let mut n = 0;
        for i in 0..self.dialling.len() {
            if self.poll_fds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            let (id, destination) = self.dialling[i];
            while let Some(peer) = self.peers.get_mut(&id) {
                let Some(sock) = &peer.own_socket else { break };
                let Ok((len, source)) = sock.recv_from(&mut self.dial_buf) else { break };
                let Ok(contents) = self.dial_buf[..len].try_into() else {
                    self.metrics.dropped_malformed.inc();
                    continue;
                };
                let input =
                    Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination, contents });
                if let Err(e) = peer.rtc.handle_input(input) {
                    debug!(peer = id, "input rejected: {e}");
                    self.metrics.dropped_malformed.inc();
                }
                n += 1;
                self.drain(id);
            }
        }
        n
    }

    /// The dialling peers' sockets, in `dialling` order (a closed one as fd -1, which poll
    /// skips), and the media socket last if `with_media`.
    fn fill_poll_fds(&mut self, with_media: bool) {
        use std::os::fd::AsRawFd;
        self.poll_fds.clear();
        for (id, _) in &self.dialling {
            let fd = self.peers.get(id).and_then(|p| p.own_socket.as_ref()).map_or(-1, |s| s.as_raw_fd());
            self.poll_fds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        }
        if with_media {
            self.poll_fds.push(libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
    }

    /// Wait for the media socket or any dialling peer's socket.
    fn wait_all(&mut self, timeout: Duration) {
        self.fill_poll_fds(true);
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: valid pollfds (sockets owned by live peers) and timespec; no signal mask change.
        unsafe { libc::ppoll(self.poll_fds.as_mut_ptr(), self.poll_fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
    }

    fn flush_sends(&mut self) {
        let failed = self.send.failed;
        self.send.flush(&self.socket);
        if self.send.failed > failed {
            METRICS.dropped.with_label_values(&["send_failed"]).inc_by(self.send.failed - failed);
        }
    }

    // ---------------------------------------------------------------- input

    fn handle_datagram(&mut self, data: &[u8], source: SocketAddr) {
        let Ok(contents) = data.try_into() else {
            self.metrics.dropped_malformed.inc();
            return;
        };
        let now = Instant::now();
        let input =
            Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: self.candidate, contents });
        let peer_id = match self.by_addr.get(&source) {
            Some(id) => *id,
            None => {
                // Only STUN from a new address gets here: find the peer by its ICE credentials.
                let Some(id) = self.peers.values().find(|p| p.rtc.accepts(&input)).map(|p| p.id) else {
                    self.metrics.dropped_unknown_peer.inc();
                    return;
                };
                self.by_addr.insert(source, id);
                if let Some(p) = self.peers.get_mut(&id) {
                    p.remote_addrs.push(source);
                }
                id
            }
        };
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            debug!(peer = peer_id, "input rejected: {e}");
            self.metrics.dropped_malformed.inc();
        }
        self.drain(peer_id);
        // Subscribers written to are drained once the whole batch of input is handled
        // (`step`): a frame's packets then leave together, one str0m timeout per subscriber
        // per batch instead of one per packet.
    }

    fn handle_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timeouts.peek().copied() {
            if t > now {
                break;
            }
            self.timeouts.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.scheduled != Some(t) {
                continue; // stale entry
            }
            peer.scheduled = None;
            if peer.next_timeout <= now {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    debug!(peer = id, "timeout input failed: {e}");
                }
            }
            self.drain(id);
        }
        self.drain_dirty();
    }

    /// Poll a peer until it has nothing more to say (str0m's rule after every input).
    ///
    /// Media written to a subscriber waits in str0m until a timeout lets its pacer see the
    /// queue: str0m answers `Timeout(now)`. That timeout is handled here at once, so the packet
    /// leaves now rather than on the next turn of the loop through the timer heap (which cost
    /// a heap entry per packet per subscriber).
    fn drain(&mut self, id: PeerId) {
        let mut immediate = false;
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive() {
                self.close_peer(id);
                return;
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    if !immediate {
                        let now = Instant::now();
                        if t <= now {
                            immediate = true;
                            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                                debug!(peer = id, "timeout input failed: {e}");
                            }
                            continue;
                        }
                    }
                    peer.next_timeout = t;
                    if peer.scheduled.is_none_or(|s| t < s) {
                        peer.scheduled = Some(t);
                        self.timeouts.push(Reverse((t, id)));
                    }
                    return;
                }
                Ok(Output::Transmit(t)) => match &peer.own_socket {
                    Some(sock) => {
                        if sock.send_to(&t.contents, t.destination).is_err() {
                            METRICS.dropped.with_label_values(&["send_failed"]).inc();
                        }
                    }
                    None => self.send.push(&self.socket, t.contents.into(), t.destination),
                },
                Ok(Output::Event(e)) => self.handle_event(id, e),
                Err(e) => {
                    warn!(peer = id, "peer failed: {e}");
                    self.close_peer(id);
                    return;
                }
            }
        }
    }

    fn drain_dirty(&mut self) {
        while let Some(id) = self.dirty.pop() {
            if let Some(p) = self.peers.get_mut(&id) {
                p.dirty = false;
            }
            self.drain(id);
        }
    }

    fn poll_speakers(&mut self, now: Instant) {
        self.next_speaker_poll = now + SPEAKER_POLL;
        for (room, detector) in &mut self.speakers {
            if let Some(track) = detector.poll(now) {
                if let Some(src) = self.tracks.get(&track) {
                    self.speaker_peer.insert(room.clone(), src.publisher);
                }
                (self.events)(WorkerEvent::ActiveSpeaker { room: room.clone(), track });
            }
        }
    }

    // --------------------------------------------------------------- events

    fn handle_event(&mut self, id: PeerId, event: Event) {
        match event {
            Event::RtpPacket(pkt) => self.forward(id, pkt),
            Event::Connected => self.on_connected(id),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.close_peer(id),
            Event::MediaAdded(m) => {
                let rids = m.simulcast.map(|s| if s.recv.is_empty() { s.send } else { s.recv }).unwrap_or_default();
                let rids = rids.into_iter().map(|l| l.rid).collect();
                self.on_media_added(id, m.mid, m.kind, m.direction.is_receiving(), rids)
            }
            Event::KeyframeRequest(req) => self.on_keyframe_request(id, req.mid, req.rid),
            Event::MediaEgressStats(s) => {
                self.count_nacks(id, s.mid, false, s.nacks);
                // Audio is never retransmitted, so its receiver reports count the path's loss.
                // Video's count what is still missing after retransmission: use them only
                // while no transport-wide feedback gives a better figure.
                let audio =
                    self.peers.get(&id).and_then(|p| p.slots.get(&s.mid)).is_some_and(|s| s.kind == TrackKind::Audio);
                if audio {
                    if let (Some(p), Some(loss)) = (self.peers.get_mut(&id), s.loss.filter(|l| l.is_finite())) {
                        p.audio_loss = Some((loss, Instant::now()));
                    }
                }
                if audio || !self.peers.get(&id).is_some_and(|p| p.twcc_loss) {
                    self.adapt_red(id, s.loss);
                }
            }
            Event::PeerStats(s) => {
                if let (Some(p), Some(rtt)) = (self.peers.get_mut(&id), s.rtt) {
                    p.rtt = Some(rtt);
                    p.follow_rtt_in_rtx_history();
                }
                debug!(peer = id, egress = ?s.egress_loss_fraction, ingress = ?s.ingress_loss_fraction, rtt = ?s.rtt, "peer stats");
                if let Some(loss) = s.egress_loss_fraction {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.twcc_loss = true;
                    }
                    self.adapt_red(id, Some(loss));
                    self.adapt_repair(id);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, can_probe }) => {
                debug!(peer = id, estimate = estimate.as_u64(), can_probe, "estimate");
                if let Some(p) = self.peers.get_mut(&id) {
                    p.estimates.record(Instant::now(), estimate.as_u64());
                }
                self.allocate(id, Instant::now());
            }
            Event::MediaIngressStats(s) => self.count_nacks(id, s.mid, true, s.nacks),
            Event::Closed => self.close_peer(id),
            _ => {}
        }
    }

    fn on_connected(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.connected = true;
        let room = peer.room.clone();
        self.activate_slots(id);
        (self.events)(WorkerEvent::PeerConnected { room, peer: id });
    }

    fn on_media_added(&mut self, id: PeerId, mid: Mid, kind: MediaKind, receiving: bool, rids: Vec<Rid>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let kind = if kind == MediaKind::Audio { TrackKind::Audio } else { TrackKind::Video };
        debug!(peer = id, ?mid, ?kind, receiving, publishes = peer.kind.publishes(), "media added");
        if receiving && peer.kind.publishes() {
            if peer.published.contains_key(&mid) {
                return;
            }
            let track = next_id();
            peer.published.insert(mid, track);
            let clock = if kind == TrackKind::Audio { 48_000 } else { 90_000 };
            self.forwarder.add_track(track, kind, clock);
            self.forwarder.set_layer_count(track, rids.len().max(1) as u8);
            self.tracks.insert(
                track,
                TrackSource {
                    publisher: id,
                    mid,
                    kind,
                    params: None,
                    publish_layers: (kind == TrackKind::Video && rids.len() > 1)
                        .then(|| PublishLayers::new(rids.len() as u8)),
                    rids,
                    red_history: Default::default(),
                },
            );
            METRICS.tracks.inc();
            let room = peer.room.clone();
            let label = peer.rtc.media(mid).map(|m| m.track_id().to_string()).unwrap_or_default();
            (self.events)(WorkerEvent::TrackPublished { room, peer: id, track, kind, label });
        } else if !receiving && peer.kind == PeerKind::Whep {
            // A WHEP viewer's m-line: negotiated by its offer, fed by whatever the room chooses.
            peer.slots.entry(mid).or_insert(Slot::new(kind, None, true));
        }
    }

    fn on_keyframe_request(&mut self, subscriber: PeerId, mid: Mid, rid: Option<Rid>) {
        self.metrics.plis_in.inc();
        let Some(slot) = self.peers.get(&subscriber).and_then(|p| p.slots.get(&mid)) else {
            return;
        };
        let Some(track) = slot.track else { return };
        // A link relaying every stream names the one it lost.
        let stream = rid.and_then(|r| slot.rids.iter().position(|x| *x == r)).unwrap_or(0) as u8;
        if let Some(stream) =
            self.forwarder.on_keyframe_request(track, (subscriber, mid), stream, Instant::now()).request_keyframe
        {
            self.request_keyframe(track, stream);
        }
    }

    /// Ask the publisher for a keyframe on one stream of a track (a simulcast RID, or the one).
    fn request_keyframe(&mut self, track: TrackId, stream: u8) {
        let Some(src) = self.tracks.get(&track) else { return };
        let Some(peer) = self.peers.get_mut(&src.publisher) else { return };
        let rid = src.rids.get(stream as usize).or(src.rids.last()).copied();
        if let Some(rx) = peer.rtc.direct_api().stream_rx_by_mid(src.mid, rid) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.metrics.plis_out.inc();
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(src.publisher);
            }
        }
    }

    /// Share a receiver's estimate among the video it receives, and tell str0m's BWE how much
    /// we would like to send so it probes for it.
    fn allocate(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let Some(mut estimate) = peer.estimates.estimate(now) else { return };
        let congested = peer.rtc.bwe().loss_is_congestion();
        estimate.congested = congested;
        let peer = &*peer;
        let speaker = self.speaker_peer.get(&peer.room).copied();
        // What repairing this receiver's loss adds to each video byte it is sent, while the loss
        // is the link's own: loss from a queue overflowing already lowers the estimate, and
        // charging its repair as well made a receiver near a 1 Mbit/s cap switch 720p ↔ 360p.
        let (rtx, fec) = if congested {
            (0.0, 0.0)
        } else {
            let rtt = peer.rtt.unwrap_or_default();
            let loss = peer.loss_steady;
            (repair::rtx_share(loss, repair::rtx_copies(loss, peer.bandwidth_limited)), self.video_fec.ratio(loss, rtt))
        };
        let mut slots = Vec::new();
        let mut demands = Vec::new();
        let mut audio = 0u64;
        let mut audio_tracks = 0;
        for (mid, slot) in &peer.slots {
            let (Some(track), true) = (slot.track, slot.active) else { continue };
            if slot.kind == TrackKind::Audio {
                // Each RED block repeats a frame: against random loss redundancy is paid for
                // before any video. While the loss is congestion it gets only what the video
                // leaves (below): at a 300 kbit/s cap one block (32 kbit/s) was enough to pause
                // 180p video, and the redundancy then protected audio against loss caused by
                // the sending itself.
                audio_tracks += 1;
                audio += AUDIO_RESERVE_BPS;
                if !congested {
                    audio += red::FRAME_BPS * slot.red_depth as u64;
                }
                continue;
            }
            let publisher = self.tracks.get(&track).map(|t| t.publisher);
            let bonus = if publisher.is_some() && publisher == speaker { SPEAKER_PRIORITY } else { 0 };
            // Bigger tiles first after the speaker; the constraint's height is in the demand.
            let Some(d) = self.forwarder.demand(track, (id, *mid), bonus, now) else { continue };
            let fec = if peer.fec_pts.contains_key(mid) { fec } else { 0.0 };
            let mut d = d.protected(rtx + fec);
            d.priority += u32::from(d.max_layer);
            slots.push((track, *mid));
            demands.push(d);
        }
        let (grants, desired) = allocate(estimate, audio, &demands);
        debug!(peer = id, ?estimate, audio, ?demands, ?grants, desired, "allocation");
        let mut keyframes = Vec::new();
        let mut granted = audio;
        // Videos not measured yet, at what they are taken to need: asked for (so str0m's
        // start-up probes look for room for them), not padded up to.
        let mut assumed = 0;
        let mut raised = false;
        for ((track, mid), (grant, d)) in slots.iter().zip(grants.iter().zip(&demands)) {
            raised |= matches!(grant, Grant::Layer(l) if d.current.is_some_and(|c| *l > c));
            match grant {
                Grant::Layer(l) if d.measured() => granted += d.cost(*l),
                Grant::Layer(l) => assumed += d.cost(*l),
                Grant::Paused => {}
            }
            if let Some(stream) = self.forwarder.set_grant(*track, (id, *mid), *grant, now).request_keyframe {
                keyframes.push((*track, stream));
            }
        }
        // Sustain what is granted plus the cheapest next raise (str0m pads up to it), so the
        // estimate can grow to where the raise fits; probe towards what everything would need.
        // Not while the loss is congestion: the padding would overflow the very queue that
        // drops, and the media queued behind it is lost with it.
        let next = if congested { None } else { crate::allocate::next_step(&demands, &grants) };
        let minimum = granted + next.unwrap_or(0);
        let limited = grants.iter().zip(&demands).any(|(g, d)| match g {
            Grant::Paused => true,
            Grant::Layer(l) => *l < d.max_layer && d.rates.get(d.max_layer as usize).is_some_and(|r| *r > 0),
        });
        if let Some(peer) = self.peers.get_mut(&id) {
            if raised {
                peer.estimates.raised(now);
            }
            peer.bandwidth_limited = limited;
            peer.congested = congested;
            peer.red_room = congested.then(|| red::blocks_in(estimate.now.saturating_sub(granted), audio_tracks));
            let cap = if congested { repair::RTX_RATIO_CAP_CONGESTED } else { repair::RTX_RATIO_CAP };
            if cap != peer.rtx_ratio_cap {
                debug!(peer = id, cap, "resend share");
                peer.rtx_ratio_cap = cap;
                peer.for_each_video_tx(|tx| tx.set_rtx_ratio_cap(Some(cap)));
            }
            if let Some(room) = peer.red_room {
                for slot in peer.slots.values_mut().filter(|s| s.kind == TrackKind::Audio && s.red_depth > room) {
                    slot.red_depth = room;
                    slot.red_changed = Some(now);
                }
            }
            // Ask for more than is granted only while something is held back: str0m probes
            // for unmet demand, and a receiver that has everything it wants needs no probing.
            let wanted = if limited { desired.max(granted + assumed) } else { granted + assumed };
            // Measured layer rates wobble by a few percent every allocation; str0m probes each
            // time the wanted rate rises, so only a real change is passed on.
            if wanted.abs_diff(peer.bwe_wanted) * 5 > peer.bwe_wanted {
                peer.bwe_wanted = wanted;
            }
            let wanted = peer.bwe_wanted;
            peer.rtc.bwe().set_bitrate(Bitrate::bps(minimum.min(wanted)), Bitrate::bps(wanted));
            peer.rtc.bwe().set_pacing_floor(Bitrate::bps(estimate.pacing_floor(limited, granted + assumed)));
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(id);
            }
        }
        for (track, stream) in keyframes {
            self.request_keyframe(track, stream);
        }
    }

    /// Tell publishers which simulcast encodings anyone still receives (see `dynacast`).
    fn check_publish_layers(&mut self, now: Instant) {
        for (track, src) in &mut self.tracks {
            let (Some(layers), Some(needed)) = (src.publish_layers.as_mut(), self.forwarder.needed_layer(*track))
            else {
                continue;
            };
            let Some(top) = layers.update(needed, now) else { continue };
            let Some(room) = self.peers.get(&src.publisher).map(|p| p.room.clone()) else { continue };
            let active = src.rids.iter().take(top as usize + 1).map(|r| r.to_string()).collect();
            debug!(track, top, "publisher layers");
            (self.events)(WorkerEvent::PublishLayers { room, peer: src.publisher, mid: src.mid.to_string(), active });
        }
    }

    /// The measured downlink loss sets how many earlier frames ride along in each RED packet.
    /// Two measures feed it: transport-wide feedback (TWCC, every second, before any repair;
    /// str0m's figure runs somewhat low at high loss) and the audio receiver reports (exact,
    /// but only every five seconds). Without TWCC, video's receiver reports stand in, though
    /// they understate the path's loss once retransmission repairs it. One second's count is noisy at these
    /// packet rates: redundancy goes up at once, and down only one step per `RED_DECAY` while
    /// the smoothed loss allows.
    fn adapt_red(&mut self, id: PeerId, loss: Option<f32>) {
        // No report in this stats interval: nothing new to act on.
        let Some(loss) = loss.filter(|l| l.is_finite()) else { return };
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let now = Instant::now();
        // The last audio report is exact where the TWCC figure runs low: it holds as a floor
        // until the next one is due.
        let loss = match peer.audio_loss {
            Some((audio, at)) if now.duration_since(at) < AUDIO_LOSS_HOLD => loss.max(audio),
            _ => loss,
        };
        // Up at once, down slowly: smoothed upwards too, retransmission copies and FEC took 4-5 s
        // to reach what 30 % loss needs, and most freezes at 30 % came in those seconds.
        peer.loss_ewma = if loss > peer.loss_ewma { loss } else { 0.8 * peer.loss_ewma + 0.2 * loss };
        peer.loss_steady = if peer.loss_steady == 0.0 { loss } else { 0.8 * peer.loss_steady + 0.2 * loss };
        // With an estimate (allocate_bandwidth), redundancy stays within what it affords while
        // the loss is congestion (str0m saw a queue); loss the link has anyway is what RED is
        // for, and keeping RED within an estimate that such loss drags down cost audio at 80 %
        // random loss 11-15 % concealment instead of 6-9 %.
        let congested = peer.rtc.bwe().loss_is_congestion();
        let budget = peer.estimates.latest().filter(|_| congested);
        let room = peer.red_room.filter(|_| congested).unwrap_or(usize::MAX);
        let up = red::depth_within(red::depth_for_loss(loss), budget).min(room);
        let floor = red::depth_within(red::depth_for_loss(peer.loss_ewma), budget).min(room);
        for slot in peer.slots.values_mut().filter(|s| s.kind == TrackKind::Audio) {
            let depth = if up > slot.red_depth {
                slot.red_changed = Some(now);
                up
            } else if slot.red_depth > up.max(floor) && red::depth_within(slot.red_depth, budget) < slot.red_depth {
                // The estimate fell: no waiting out the decay.
                slot.red_changed = Some(now);
                up.max(floor)
            } else if slot.red_depth > floor && slot.red_changed.is_none_or(|t| now.duration_since(t) >= RED_DECAY) {
                slot.red_changed = Some(now);
                slot.red_depth - 1
            } else {
                slot.red_depth
            };
            if depth != slot.red_depth {
                debug!(peer = id, loss, smoothed = peer.loss_ewma, depth, "audio redundancy");
            }
            slot.red_depth = depth;
        }
    }

    /// More copies per NACK as the smoothed downlink loss grows (see `repair`).
    fn adapt_repair(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let copies = repair::rtx_copies(peer.loss_ewma, peer.bandwidth_limited);
        if copies == peer.rtx_copies {
            return;
        }
        debug!(peer = id, loss = peer.loss_ewma, copies, "retransmission copies");
        peer.rtx_copies = copies;
        peer.for_each_video_tx(|tx| tx.set_rtx_repeat(copies));
    }

    fn count_nacks(&mut self, id: PeerId, mid: Mid, ingress: bool, total: u64) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let seen = peer.nacks_seen.entry((mid, ingress)).or_insert(0);
        let delta = total.saturating_sub(*seen);
        *seen = total;
        if delta > 0 {
            // Ingress stats count NACKs we sent to a publisher; egress those a subscriber sent us.
            METRICS.nacks.with_label_values(&[if ingress { "tx" } else { "rx" }]).inc_by(delta);
        }
    }

    // ------------------------------------------------------------ hot path

    fn forward(&mut self, publisher: PeerId, pkt: RtpPacket) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let (track, stream) = match peer.ssrc_tracks.get(&ssrc) {
            Some(t) => *t,
            None => {
                let Some((mid, rid)) = peer.rtc.direct_api().stream_rx(&ssrc).map(|s| (s.mid(), s.rid())) else {
                    return;
                };
                let Some(&t) = peer.published.get(&mid) else { return };
                let stream = rid
                    .and_then(|r| self.tracks.get(&t).and_then(|src| src.rids.iter().position(|x| *x == r)))
                    .unwrap_or(0) as u8;
                peer.ssrc_tracks.insert(ssrc, (t, stream));
                (t, stream)
            }
        };
        let Some(src) = self.tracks.get_mut(&track) else {
            return;
        };
        let pt = pkt.header.payload_type;
        if src.params.is_none_or(|p| p.pt() != pt && p.red() != Some(pt)) {
            let params = peer.rtc.codec_config().params().iter().find(|p| p.pt() == pt || p.red() == Some(pt)).copied();
            let codec = params.and_then(|p| video_codec(p.spec().codec));
            let clock = params.map_or(90_000, |p| p.spec().clock_rate.get());
            src.params = params;
            self.forwarder.set_codec(track, codec, clock);
        }
        let Some(params) = src.params else { return };
        let kind = src.kind;
        match kind {
            TrackKind::Audio => {
                self.metrics.packets_in_audio.inc();
                self.metrics.bytes_in_audio.inc_by(pkt.payload.len() as u64);
            }
            TrackKind::Video => {
                self.metrics.packets_in_video.inc();
                self.metrics.bytes_in_video.inc_by(pkt.payload.len() as u64);
            }
        }

        let dd = if kind == TrackKind::Video { dd_extension::raw(&pkt.header.ext_vals) } else { None };
        let meta = PacketMeta { seq: *pkt.seq_no, ts: pkt.header.timestamp, marker: pkt.header.marker, stream, dd };
        let mut forwards = std::mem::take(&mut self.forwards);
        let outcome = self.forwarder.on_packet(track, meta, &pkt.payload, now, &mut forwards);
        if let Some(stream) = outcome.request_keyframe {
            self.request_keyframe(track, stream);
        }
        match outcome.descriptor_read {
            Some(true) => self.metrics.dd_read.inc(),
            Some(false) => self.metrics.dd_unreadable.inc(),
            None => {}
        }
        // Parsed once per packet; each subscriber's rewrite is a fixed-size patch applied
        // while serialising, so the payload is shared, never copied.
        let vp8 = forwards.iter().any(|f| f.vp8.is_some()).then(|| Vp8Descriptor::parse(&pkt.payload).ok()).flatten();
        // Only the extensions that describe the media travel on; transport ones are per leg.
        let mut exts = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            abs_capture_time: pkt.header.ext_vals.abs_capture_time,
            ..Default::default()
        };
        // The descriptor goes on to a cascade link whatever the codec: the node beyond selects
        // layers for its own viewers from it (it forwards it to them only as below).
        let link_exts = dd
            .is_some()
            .then(|| ExtensionValues { user_values: pkt.header.ext_vals.user_values.clone(), ..exts.clone() });
        if dd.is_some() && self.forwarder.forwards_descriptor(track) {
            // Shared by every receiver (a reference count each, see vendor/README.md).
            exts.user_values = pkt.header.ext_vals.user_values.clone();
        }

        let is_red = params.red() == Some(pt) && params.pt() != pt;
        let mut primary: Option<Option<Arc<[u8]>>> = None;
        if kind == TrackKind::Audio && !forwards.is_empty() {
            // Keep the frame for receivers that need deeper redundancy than the publisher's.
            let frame = if is_red {
                red::primary(&pkt.payload).map(|(_, r)| Arc::<[u8]>::from(&pkt.payload[r]))
            } else {
                Some(pkt.payload.clone())
            };
            if let (Some(f), Some(src)) = (frame.clone(), self.tracks.get_mut(&track)) {
                src.red_history.push(pkt.header.timestamp, f);
            }
            if is_red {
                primary = Some(frame);
            }
        }
        // RED payloads packed for this packet, by depth: one per depth, shared by receivers
        // (with the Opus PT they were packed for; receivers numbering Opus alike share them).
        let mut packed: [Option<(Pt, Arc<[u8]>)>; red::MAX_BLOCKS] = Default::default();
        // The publisher's RED payload renumbered for receivers whose Opus PT differs.
        let mut renumbered: Option<(Pt, Arc<[u8]>)> = None;
        let mut scratch = Vec::new();
        for f in &forwards {
            let (sub_id, mid) = f.to;
            let Some(sub) = self.peers.get_mut(&sub_id) else {
                continue;
            };
            let (local_pt, local_red) = match sub.slots.get(&mid).and_then(|s| s.pt) {
                Some(p) => p,
                None => {
                    let Some(found) = sub.local_pt_for(params) else {
                        continue;
                    };
                    if let Some(slot) = sub.slots.get_mut(&mid) {
                        slot.pt = Some(found);
                    }
                    found
                }
            };
            // RED goes on as RED to receivers that negotiated it; the others get the primary
            // frame, cut out once per packet and shared by all of them.
            // (One lookup for both: this runs per packet per subscriber.)
            let (depth, rid) = sub.slots.get(&mid).map_or((0, None), |s| (s.red_depth, s.rid(f.stream)));
            let (out_pt, payload) = match (is_red, local_red) {
                (_, Some(red)) if depth > 1 || (depth == 1 && !is_red) => {
                    let d = depth.min(red::MAX_BLOCKS - 1);
                    if packed[d].as_ref().is_none_or(|(pt, _)| pt != &local_pt) {
                        if let Some(src) = self.tracks.get(&track) {
                            if src.red_history.pack(*local_pt, d, &mut scratch) {
                                packed[d] = Some((local_pt, Arc::from(&scratch[..])));
                            }
                        }
                    }
                    match (packed[d].as_ref().filter(|(pt, _)| pt == &local_pt), is_red) {
                        (Some((_, p)), _) => (red, p.clone()),
                        (None, true) => (red, pkt.payload.clone()),
                        (None, false) => (local_pt, pkt.payload.clone()),
                    }
                }
                // Same Opus numbering as the publisher: the RED payload goes on untouched.
                (true, Some(red)) if params.pt() == local_pt => (red, pkt.payload.clone()),
                (true, Some(red)) => {
                    if renumbered.as_ref().is_none_or(|(pt, _)| pt != &local_pt) {
                        let Some(p) = red::with_pt(&pkt.payload, *local_pt) else { continue };
                        renumbered = Some((local_pt, Arc::from(p)));
                    }
                    let Some((_, p)) = &renumbered else { continue };
                    (red, p.clone())
                }
                (true, None) => {
                    if primary.is_none() {
                        primary = Some(red::primary(&pkt.payload).map(|(_, r)| Arc::from(&pkt.payload[r])));
                    }
                    let Some(Some(p)) = &primary else { continue };
                    (local_pt, p.clone())
                }
                (false, _) => (local_pt, pkt.payload.clone()),
            };
            let mut api = sub.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
                continue;
            };
            let ext_vals = match (&link_exts, sub.on_link) {
                (Some(e), true) => e.clone(),
                _ => exts.clone(),
            };
            let mut write = RtpWrite::new(out_pt, f.seq.into(), f.ts, pkt.timestamp, payload)
                .marker(f.marker)
                .ext_vals(ext_vals)
                .nackable(kind == TrackKind::Video);
            if let (Some(desc), Some((pid, tl0))) = (vp8, f.vp8) {
                let mut patch = desc.patch();
                if desc.picture_id().is_some() {
                    patch = patch.picture_id(pid);
                }
                if desc.tl0_pic_idx().is_some() {
                    patch = patch.tl0_pic_idx(tl0);
                }
                if let Ok(p) = patch.build() {
                    write = write.vp8_patch(p);
                }
            }
            tx.write_rtp(write);
            // Parity after each frame for a subscriber with video FEC, as much as its loss and
            // round trip call for; the parity packets take sequence numbers kept free here.
            if kind == TrackKind::Video && tx.ulpfec_enabled() {
                if let Some(slot) = sub.slots.get_mut(&mid) {
                    slot.fec_media += 1;
                    if f.marker {
                        let rtt = sub.rtt.unwrap_or_default();
                        let loss = if sub.congested { 0.0 } else { sub.loss_ewma };
                        let n = self.video_fec.packets(slot.fec_media, loss, rtt);
                        if n > 0 {
                            if let Some(first) = self.forwarder.reserve_seq(track, f.to, f.stream, n as u64) {
                                tx.write_fec(first.into(), n);
                                self.metrics.fec_packets_out.inc_by(n as u64);
                            }
                        }
                        slot.fec_media = 0;
                    }
                }
            }
            match kind {
                TrackKind::Audio => {
                    self.metrics.packets_out_audio.inc();
                    self.metrics.bytes_out_audio.inc_by(pkt.payload.len() as u64);
                }
                TrackKind::Video => {
                    self.metrics.packets_out_video.inc();
                    self.metrics.bytes_out_video.inc_by(pkt.payload.len() as u64);
                }
            }
            if !sub.dirty {
                sub.dirty = true;
                self.dirty.push(sub_id);
            }
        }
        if !forwards.is_empty() {
            self.metrics.forward_latency.observe(now.saturating_duration_since(pkt.timestamp).as_secs_f64());
        }
        self.forwards = forwards;
    }

    /// Register negotiated slots of a connected peer with the forwarder.
    fn activate_slots(&mut self, id: PeerId) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.connected {
            return;
        }
        let mut keyframes = Vec::new();
        let mut video = Vec::new();
        let on_link = peer.on_link;
        for (mid, slot) in peer.slots.iter_mut() {
            if slot.negotiated && !slot.active {
                if let Some(track) = slot.track {
                    slot.active = true;
                    slot.pt = None;
                    if slot.kind == TrackKind::Video {
                        video.push(*mid);
                    }
                    // Both may ask for a keyframe; the gate lets only the first through, so
                    // keep whichever asked (the constraint's stream is the better guess).
                    // A link takes a track whole (every simulcast stream, every SVC frame):
                    // the node beyond selects for its own viewers.
                    let first = if !on_link {
                        self.forwarder.subscribe(track, (id, *mid), now)
                    } else {
                        let o = self.forwarder.subscribe_all_streams(track, (id, *mid), now);
                        if let Some(top) = slot.link_top {
                            self.forwarder.set_relay_top(track, (id, *mid), top);
                        }
                        o
                    }
                    .request_keyframe;
                    let constrained = peer
                        .constraints
                        .get(&track)
                        .and_then(|c| self.forwarder.set_constraint(track, (id, *mid), *c, now).request_keyframe);
                    if let Some(stream) = constrained.or(first) {
                        keyframes.push((track, stream));
                    }
                }
            }
        }
        let mut api = peer.rtc.direct_api();
        for mid in video {
            let rids = peer.slots.get(&mid).map(|s| s.rids.clone()).unwrap_or_default();
            let fec = peer.fec_pts.get(&mid).map(|p| (p.red.into(), p.ulpfec.into()));
            let streams: Vec<Option<Rid>> =
                if rids.is_empty() { vec![None] } else { rids.into_iter().map(Some).collect() };
            for rid in streams {
                if let Some(tx) = api.stream_tx_by_mid(mid, rid) {
                    tx.set_rtx_cache(repair::RTX_CACHE_PACKETS, peer.rtx_history, Some(peer.rtx_ratio_cap));
                    tx.set_rtx_repeat(peer.rtx_copies);
                    tx.set_ulpfec(fec);
                }
            }
        }
        for (t, stream) in keyframes {
            self.request_keyframe(t, stream);
        }
    }

    // ------------------------------------------------------------- commands

    /// Returns false when the control plane has gone away.
    fn handle_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.handle_command(cmd),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn handle_command(&mut self, cmd: WorkerCommand) {
        match cmd {
            WorkerCommand::CreatePeer { peer, room, kind, offer, place, reply } => {
                // str0m asserts on some offers it cannot map. The one we know of (one payload
                // type for two codecs across m-lines) is refused before it gets there
                // (`sdp_check`); should another reach it, the client still gets a refusal, not
                // "worker gone". The peer is only inserted on success, so nothing half-made
                // stays behind.
                let made = catch_unwind(AssertUnwindSafe(|| self.create_peer(peer, room, kind, offer, place)));
                let _ = reply.send(made.unwrap_or_else(|_| Err(unmappable_offer())));
            }
            WorkerCommand::RemoteOffer { peer, sdp, reply } => {
                let r = match self.peers.get_mut(&peer) {
                    Some(p) => catch_unwind(AssertUnwindSafe(|| p.accept_offer(&sdp))).unwrap_or_else(|_| {
                        // Its negotiation state is unknown after the panic: close it.
                        p.rtc.disconnect();
                        Err(unmappable_offer())
                    }),
                    None => Err(SfuError::UnknownPeer),
                };
                let _ = reply.send(r);
                self.drain(peer);
            }
            WorkerCommand::RemoteAnswer { peer, sdp, reply } => {
                let r = match self.peers.get_mut(&peer) {
                    Some(p) => p.accept_answer(&sdp).map(|_| ()),
                    None => Err(SfuError::UnknownPeer),
                };
                let ok = r.is_ok();
                let _ = reply.send(r);
                if ok {
                    self.activate_slots(peer);
                    self.offer_if_needed(peer);
                }
                self.drain(peer);
            }
            WorkerCommand::Subscribe { subscriber, track, stream_id } => self.subscribe(subscriber, track, stream_id),
            WorkerCommand::Unsubscribe { subscriber, track } => self.unsubscribe(subscriber, track),
            WorkerCommand::SetMuted { track, muted } => {
                if let Some(stream) = self.forwarder.set_muted(track, muted, Instant::now()).request_keyframe {
                    self.request_keyframe(track, stream);
                }
            }
            WorkerCommand::SetLinkLayers { subscriber, mid, active } => {
                let mid = Mid::from(mid.as_str());
                let Some(slot) = self.peers.get_mut(&subscriber).and_then(|p| p.slots.get_mut(&mid)) else {
                    return;
                };
                let Some(track) = slot.track.filter(|_| !slot.rids.is_empty()) else { return };
                // The lowest stream always stays on (as dynacast keeps it at a publisher).
                let top = slot.rids.iter().rposition(|r| active.iter().any(|a| a.as_str() == &**r)).unwrap_or(0) as u8;
                slot.link_top = Some(top);
                debug!(subscriber, %mid, top, "link layers");
                self.forwarder.set_relay_top(track, (subscriber, mid), top);
            }
            WorkerCommand::SetConstraint { subscriber, track, constraint } => {
                let c = Constraint {
                    max_height: constraint.max_height.unwrap_or(u16::MAX),
                    max_temporal: constraint.max_temporal.unwrap_or(u8::MAX),
                    paused: constraint.paused,
                };
                let Some(peer) = self.peers.get_mut(&subscriber) else { return };
                peer.constraints.insert(track, c);
                // Live already: apply now. Otherwise `activate_slots` applies it when it is.
                let Some(mid) = peer.slot_of(track).filter(|m| peer.slots.get(m).is_some_and(|s| s.active)) else {
                    return;
                };
                if let Some(stream) =
                    self.forwarder.set_constraint(track, (subscriber, mid), c, Instant::now()).request_keyframe
                {
                    self.request_keyframe(track, stream);
                }
            }
            WorkerCommand::ClosePeer { peer } => self.close_peer(peer),
        }
        self.drain_dirty();
    }

    fn create_peer(
        &mut self,
        id: PeerId,
        room: RoomId,
        kind: PeerKind,
        offer: Option<String>,
        place: PeerPlace,
    ) -> Result<String, SfuError> {
        let features = Features {
            // A cascade link's sending end shares its estimate among the tracks that cross it
            // as a viewer's does, a simulcast track's streams capped together by one grant
            // (`RelayStreams::set_cap`).
            bwe: self.allocate_bandwidth,
            fec: self.video_fec != VideoFec::Off,
            // A link's far end relays whatever descriptor the venue sent (none from VP8 ones).
            descriptor: place.on_link() || dd_extension::negotiate(kind.publishes(), offer.as_deref()),
            ice_lite: place.ice_lite(),
        };
        // A dialling peer gets a socket of its own (see `Peer::own_socket`).
        let own_socket = if place.ice_lite() {
            None
        } else {
            let s =
                UdpSocket::bind(SocketAddr::new(self.bind.ip(), 0)).map_err(|e| SfuError::Rejected(e.to_string()))?;
            s.set_nonblocking(true).map_err(|e| SfuError::Rejected(e.to_string()))?;
            Some(s)
        };
        let candidate = match &own_socket {
            Some(s) => SocketAddr::new(
                self.candidate.ip(),
                s.local_addr().map_err(|e| SfuError::Rejected(e.to_string()))?.port(),
            ),
            None => self.candidate,
        };
        let now = Instant::now();
        let cert = self.dtls.for_peer(now);
        let mut peer = Peer::new(id, room, kind, candidate, features, cert, now);
        peer.on_link = place.on_link();
        let dialling = own_socket.is_some();
        peer.own_socket = own_socket;
        let sdp = match (kind, offer) {
            (PeerKind::Subscribe, _) => {
                peer.make_offer(true).ok_or_else(|| SfuError::Rejected("nothing to offer".into()))?
            }
            (_, Some(offer)) => peer.accept_offer(&offer)?,
            (_, None) => return Err(SfuError::BadSdp("an offer is required".into())),
        };
        self.peers.insert(id, Box::new(peer));
        if dialling {
            self.dialling.push((id, candidate));
        }
        METRICS.peers.inc();
        self.drain(id);
        Ok(sdp)
    }

    fn subscribe(&mut self, subscriber: PeerId, track: TrackId, stream_id: String) {
        let Some(kind) = self.tracks.get(&track).map(|t| t.kind) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        match peer.kind {
            PeerKind::Subscribe => {
                if peer.slot_of(track).is_some() || peer.wanted.iter().any(|w| w.track == track) {
                    return;
                }
                // A link takes a simulcast track whole, so the node beyond chooses per viewer.
                let rids = match self.tracks.get(&track) {
                    Some(src) if peer.on_link && kind == TrackKind::Video && src.rids.len() > 1 => src.rids.clone(),
                    _ => Vec::new(),
                };
                peer.wanted.push(WantedTrack { track, kind, stream_id, rids });
                self.offer_if_needed(subscriber);
            }
            PeerKind::Whep => {
                // Switch the viewer's m-line of this kind to the new source.
                let Some((mid, old)) = peer.slots.iter().find(|(_, s)| s.kind == kind).map(|(m, s)| (*m, s.track))
                else {
                    return;
                };
                if old == Some(track) {
                    return;
                }
                if let Some(old) = old {
                    self.forwarder.unsubscribe(old, (subscriber, mid));
                }
                if let Some(slot) = peer.slots.get_mut(&mid) {
                    slot.track = Some(track);
                    slot.active = false;
                }
                self.activate_slots(subscriber);
            }
            PeerKind::Publish | PeerKind::Whip => {}
        }
    }

    fn unsubscribe(&mut self, subscriber: PeerId, track: TrackId) {
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        peer.wanted.retain(|w| w.track != track);
        let Some(mid) = peer.slot_of(track) else {
            return;
        };
        self.forwarder.unsubscribe(track, (subscriber, mid));
        if peer.kind == PeerKind::Subscribe {
            peer.slots.remove(&mid);
            peer.unwanted.push(mid);
            self.offer_if_needed(subscriber);
        } else if let Some(slot) = peer.slots.get_mut(&mid) {
            slot.track = None;
            slot.active = false;
        }
    }

    fn offer_if_needed(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.kind != PeerKind::Subscribe {
            return;
        }
        if let Some(sdp) = peer.make_offer(false) {
            let room = peer.room.clone();
            (self.events)(WorkerEvent::SubscribeOffer { room, peer: id, sdp });
        }
    }

    fn close_peer(&mut self, id: PeerId) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        peer.rtc.disconnect();
        // Flush what str0m still wants to say (DTLS close_notify, RTCP BYE).
        while let Ok(Output::Transmit(t)) = peer.rtc.poll_output() {
            match &peer.own_socket {
                Some(sock) => drop(sock.send_to(&t.contents, t.destination)),
                None => self.send.push(&self.socket, t.contents.into(), t.destination),
            }
        }
        self.dialling.retain(|(d, _)| *d != id);
        for addr in &peer.remote_addrs {
            self.by_addr.remove(addr);
        }
        self.forwarder.forget_where(|(p, _)| *p == id);
        for track in peer.published.values() {
            self.forwarder.remove_track(*track);
            self.tracks.remove(track);
            if let Some(d) = self.speakers.get_mut(&peer.room) {
                d.remove(*track);
            }
            METRICS.tracks.dec();
            (self.events)(WorkerEvent::TrackEnded { room: peer.room.clone(), peer: id, track: *track });
        }
        METRICS.peers.dec();
        info!(peer = id, room = %peer.room, "peer closed");
        (self.events)(WorkerEvent::PeerClosed { room: peer.room, peer: id });
    }
}

fn video_codec(c: Codec) -> Option<VideoCodec> {
    match c {
        Codec::Vp8 => Some(VideoCodec::Vp8),
        Codec::Vp9 => Some(VideoCodec::Vp9),
        Codec::H264 => Some(VideoCodec::H264),
        Codec::H265 => Some(VideoCodec::H265),
        Codec::Av1 => Some(VideoCodec::Av1),
        _ => None,
    }
}
