//! The Node actor: configuration, the registry of live rooms, and the media workers. Rooms are
//! pinned to a worker when they start (least loaded), and worker events are routed to them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix::prelude::*;
use tracing::warn;

use sfu::{RoomId, WorkerEvent, WorkerHandle};

use crate::cascade::media::{ParentRooms, RoomUplink, StopUplink};
use crate::room::{CloseRoom, Media, Room};
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// First UDP port; worker `i` uses `udp_port + i`.
    pub udp_port: u16,
    /// Address put in ICE candidates.
    pub public_ip: IpAddr,
    pub workers: usize,
    /// Share receivers' bandwidth estimates among their video (see docs/architecture.md).
    pub allocate_bandwidth: bool,
    /// FEC on subscribers' video.
    pub video_fec: sfu::VideoFec,
    /// Keyframe requests to one publisher at most this often.
    pub keyframe_request_interval: std::time::Duration,
    /// A node with a cascade parent joins each of its rooms to the parent's room of the same
    /// id (engine::cascade::media).
    pub parent_rooms: Option<ParentRooms>,
    /// This node's name in the cascade (what tracks published here are said to come from).
    pub node_name: String,
}

pub struct Node {
    store: Arc<dyn Store>,
    node_name: Arc<str>,
    parent_rooms: Option<ParentRooms>,
    workers: Vec<WorkerHandle>,
    rooms: HashMap<RoomId, (Addr<Room>, usize)>,
    /// Each open room's link up to the parent's room of the same id.
    uplinks: HashMap<RoomId, Addr<RoomUplink>>,
    counts: HashMap<RoomId, usize>,
}

impl Node {
    /// Start the node and its media workers.
    pub fn start(store: Arc<dyn Store>, media: &MediaConfig) -> std::io::Result<Addr<Node>> {
        sfu::init_crypto();
        let mut err = None;
        let addr = Node::create(|ctx| {
            let me = ctx.address();
            let sink: sfu::EventSink = Arc::new(move |ev: WorkerEvent| me.do_send(Route(ev)));
            let mut workers = Vec::new();
            for i in 0..media.workers.max(1) {
                let port = media.udp_port.checked_add(i as u16).unwrap_or(0);
                let bind = SocketAddr::new(media.bind_ip, port);
                let candidate = SocketAddr::new(media.public_ip, port);
                let config = sfu::WorkerConfig {
                    index: i,
                    bind,
                    candidate,
                    allocate_bandwidth: media.allocate_bandwidth,
                    video_fec: media.video_fec,
                    keyframe_request_interval: media.keyframe_request_interval,
                };
                match sfu::spawn_worker(config, sink.clone()) {
                    Ok(w) => workers.push(w),
                    Err(e) => err = Some(std::io::Error::new(e.kind(), format!("UDP {bind}: {e}"))),
                }
            }
            Node {
                store,
                parent_rooms: media.parent_rooms.clone(),
                node_name: Arc::from(media.node_name.as_str()),
                workers,
                rooms: HashMap::new(),
                uplinks: HashMap::new(),
                counts: HashMap::new(),
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(addr),
        }
    }

    fn least_loaded_worker(&self) -> usize {
        let mut load = vec![0usize; self.workers.len()];
        for (id, (_, w)) in &self.rooms {
            load[*w] += self.counts.get(id).copied().unwrap_or(0) + 1;
        }
        load.iter().enumerate().min_by_key(|(_, l)| **l).map_or(0, |(i, _)| i)
    }
}

impl Actor for Node {
    type Context = Context<Self>;
}

/// Get the live actor of a stored room, starting it on first use. `None` if no such room.
#[derive(Message)]
#[rtype(result = "Option<Addr<Room>>")]
pub struct OpenRoom {
    pub id: String,
}

impl Handler<OpenRoom> for Node {
    type Result = Option<Addr<Room>>;
    fn handle(&mut self, msg: OpenRoom, ctx: &mut Context<Self>) -> Self::Result {
        if let Some((addr, _)) = self.rooms.get(msg.id.as_str()) {
            if addr.connected() {
                return Some(addr.clone());
            }
        }
        let record = match self.store.get_room(&msg.id) {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                warn!("store read failed: {e}");
                return None;
            }
        };
        let w = self.least_loaded_worker();
        let id: RoomId = Arc::from(record.id.as_str());
        let room =
            Room::new(id.clone(), record.name, self.node_name.clone(), ctx.address(), self.workers[w].clone()).start();
        self.rooms.insert(id.clone(), (room.clone(), w));
        if let Some(parent) = &self.parent_rooms {
            self.uplinks.insert(id, RoomUplink::new(record.id.clone(), room.clone(), parent.clone()).start());
        }
        Some(room)
    }
}

/// The parent changed (`PUT /api/v1/cascade/parent`): every open room leaves the old parent's
/// room and joins the new one's.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetParentRooms(pub Option<ParentRooms>);

impl Handler<SetParentRooms> for Node {
    type Result = ();
    fn handle(&mut self, SetParentRooms(parent): SetParentRooms, _: &mut Context<Self>) {
        for (_, uplink) in self.uplinks.drain() {
            uplink.do_send(StopUplink);
        }
        self.parent_rooms = parent;
        let Some(parent) = &self.parent_rooms else { return };
        for (id, (room, _)) in self.rooms.iter().filter(|(_, (room, _))| room.connected()) {
            let uplink = RoomUplink::new(id.to_string(), room.clone(), parent.clone()).start();
            self.uplinks.insert(id.clone(), uplink);
        }
    }
}

/// Close a live room (it was deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShutRoom {
    pub id: String,
    pub reason: String,
}

impl Handler<ShutRoom> for Node {
    type Result = ();
    fn handle(&mut self, msg: ShutRoom, _: &mut Context<Self>) {
        if let Some((addr, _)) = self.rooms.remove(msg.id.as_str()) {
            addr.do_send(CloseRoom { reason: msg.reason });
        }
        // (It stops by itself once the room has, within a second; sooner is tidier.)
        if let Some(uplink) = self.uplinks.remove(msg.id.as_str()) {
            uplink.do_send(StopUplink);
        }
        if self.counts.remove(msg.id.as_str()).is_some_and(|n| n > 0) {
            sfu::metrics::METRICS.rooms.dec();
        }
    }
}

/// Rooms report their size; the node keeps it for listings, load balancing and metrics.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomCount {
    pub room: RoomId,
    pub participants: usize,
}

impl Handler<RoomCount> for Node {
    type Result = ();
    fn handle(&mut self, msg: RoomCount, _: &mut Context<Self>) {
        let before = self.counts.insert(msg.room, msg.participants).unwrap_or(0);
        match (before > 0, msg.participants > 0) {
            (false, true) => sfu::metrics::METRICS.rooms.inc(),
            (true, false) => sfu::metrics::METRICS.rooms.dec(),
            _ => {}
        }
    }
}

#[derive(Message)]
#[rtype(result = "HashMap<String, usize>")]
pub struct Counts;

impl Handler<Counts> for Node {
    type Result = MessageResult<Counts>;
    fn handle(&mut self, _: Counts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.counts.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }
}

/// A worker event, routed to its room.
#[derive(Message)]
#[rtype(result = "()")]
struct Route(WorkerEvent);

impl Handler<Route> for Node {
    type Result = ();
    fn handle(&mut self, Route(ev): Route, _: &mut Context<Self>) {
        let room = match &ev {
            WorkerEvent::PeerConnected { room, .. }
            | WorkerEvent::PeerClosed { room, .. }
            | WorkerEvent::TrackPublished { room, .. }
            | WorkerEvent::TrackEnded { room, .. }
            | WorkerEvent::SubscribeOffer { room, .. }
            | WorkerEvent::PublishLayers { room, .. }
            | WorkerEvent::ActiveSpeaker { room, .. } => room,
        };
        if let Some((addr, _)) = self.rooms.get(room) {
            addr.do_send(Media(ev));
        }
    }
}
