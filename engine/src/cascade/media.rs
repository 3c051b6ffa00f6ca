//! Media across a cascade link: a conference's room on a child node joins the room of the
//! same id on its parent as one participant (`Endpoint::Cascade`), over the parent's own
//! conference WebSocket. Whatever the child's venue publishes goes up once, as that
//! participant's tracks; whatever the parent's room has comes down once, as the tracks of a
//! participant in the child's room. Every other member on either side subscribes to those
//! tracks as to anyone's, so a track crosses a link once however many watch it beyond; a track
//! never goes back to the member it came from, so nothing loops. Two hops are two links.
//!
//! The parent side needs nothing special: it sees a conference client. The child side is this
//! actor: a `Device` in the local room whose peers run full ICE (both ends are yunshi, which
//! is ICE lite towards browsers), and a thread speaking the parent's WebSocket. The roles of
//! the two peer connections cross over:
//!
//! ```text
//! child's Device (local room)                 parent's room
//!   subscribe peer: offers local tracks  ──publish_offer──▶  publish peer answers
//!                 ◀── subscribe_answer ── ◀──publish_answer──
//!   publish peer: answers               ◀──subscribe_offer──  subscribe peer offers
//!                                        ──subscribe_answer─▶
//! ```

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;
use tracing::{debug, info, warn};
use tungstenite::Message;

use crate::cascade::token;
use crate::device::{Device, FromClient, LinkLayers, StartSubscribing, Stop};
use crate::protocol::{ClientMessage, Role, ServerMessage};
use crate::room::{Endpoint, Join, LinkWants, Room};

/// Where this node's rooms join upwards.
#[derive(Clone)]
pub struct ParentRooms {
    pub node: String,
    /// `http://host:port` of the parent's API.
    pub parent_url: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ParentRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentRooms").field("node", &self.node).field("parent_url", &self.parent_url).finish()
    }
}

pub struct RoomUplink {
    room_id: String,
    room: Addr<Room>,
    parent: ParentRooms,
    /// JSON text frames for the parent; the thread sends them while connected.
    to_parent: Option<mpsc::Sender<String>>,
    /// The local participant that stands for the parent's room while connected.
    local: Option<Addr<Device>>,
    /// Its member id in the local room.
    member: Option<crate::room::MemberId>,
}

impl RoomUplink {
    pub fn new(room_id: String, room: Addr<Room>, parent: ParentRooms) -> Self {
        Self { room_id, room, parent, to_parent: None, local: None, member: None }
    }

    fn send_up(&self, v: Value) {
        if let Some(tx) = &self.to_parent {
            let _ = tx.send(v.to_string());
        }
    }

    fn drop_local(&mut self) {
        self.member = None;
        if let Some(d) = self.local.take() {
            d.do_send(Stop);
        }
    }
}

impl Actor for RoomUplink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (tx, rx) = mpsc::channel();
        self.to_parent = Some(tx);
        let me = ctx.address();
        let (parent, room) = (self.parent.clone(), self.room_id.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("cascade-room-{room}"))
            .spawn(move || conference_client(parent, room, rx, move |ev| me.do_send(ev)));
        if let Err(e) = spawned {
            warn!("cascade room uplink thread: {e}");
            ctx.stop();
        }
        // The local room ends (deleted, or ended from above): so does its link upwards.
        ctx.run_interval(Duration::from_secs(1), |me, ctx| {
            if !me.room.connected() {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.drop_local();
        // Dropping the sender ends the thread, which closes the WebSocket.
        self.to_parent = None;
    }
}

/// What the thread reports.
#[derive(Message, Debug)]
#[rtype(result = "()")]
enum FromParent {
    /// The parent's room took us in: stand for it here.
    Joined,
    Message(Value),
    Gone(String),
}

impl Handler<FromParent> for RoomUplink {
    type Result = ();
    fn handle(&mut self, ev: FromParent, ctx: &mut Self::Context) {
        match ev {
            FromParent::Joined => {
                info!(room = %self.room_id, parent = %self.parent.parent_url, "cascade: room joined upwards");
                self.drop_local();
                let (out_tx, mut out_rx) = unbounded_channel::<ServerMessage>();
                let join = Join {
                    name: "cascade:parent".into(),
                    role: Role::Speaker,
                    endpoint: Endpoint::Parent,
                    out: Some(out_tx.clone()),
                };
                let room = self.room.clone();
                let room_id = self.room_id.clone();
                let me = ctx.address();
                ctx.wait(
                    async move {
                        let joined = room.send(join).await.ok()?;
                        let device =
                            Device::new(joined.member, Role::Speaker, room, joined.room, joined.worker, Some(out_tx))
                                .dialling()
                                .start();
                        device.do_send(StartSubscribing);
                        let member = joined.member;
                        // The local side's answers and offers go up as they come.
                        actix::spawn(async move {
                            while let Some(m) = out_rx.recv().await {
                                me.do_send(FromLocal(m));
                            }
                        });
                        Some((device, member))
                    }
                    .into_actor(self)
                    .map(move |joined, act, _| {
                        if joined.is_none() {
                            warn!(room = %room_id, "cascade: the local room refused its uplink");
                        }
                        act.local = joined.as_ref().map(|(d, _)| d.clone());
                        act.member = joined.map(|(_, m)| m);
                    }),
                );
            }
            FromParent::Message(v) => {
                debug!(room = %self.room_id, kind = %v["type"], "cascade: from the parent's room");
                let sdp = v["sdp"].as_str().map(str::to_string);
                match (v["type"].as_str(), sdp, &self.local) {
                    (Some("subscribe_offer"), Some(sdp), Some(d)) => {
                        d.do_send(FromClient(ClientMessage::PublishOffer { sdp }))
                    }
                    (Some("publish_answer"), Some(sdp), Some(d)) => {
                        d.do_send(FromClient(ClientMessage::SubscribeAnswer { sdp }))
                    }
                    // The parent's dynacast for one of our simulcast tracks: what is watched up
                    // there is all that goes up.
                    (Some("publish_layers"), _, Some(d)) => {
                        if let (Some(mid), Some(active)) = (v["mid"].as_str(), v["active"].as_array()) {
                            let active = active.iter().filter_map(|r| r.as_str().map(str::to_string)).collect();
                            d.do_send(LinkLayers { mid: mid.to_string(), active });
                        }
                    }
                    (Some("error"), _, _) => warn!(room = %self.room_id, error = %v, "cascade: the parent's room says"),
                    (Some("room_closed"), _, _) => self.drop_local(),
                    // What the parent's room watches of ours: the rest stays here, paused.
                    (Some("cascade_wanted"), _, Some(_)) => {
                        if let Some(member) = self.member {
                            let tracks = v["tracks"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|t| t.as_str().map(str::to_string))
                                .collect();
                            self.room.do_send(LinkWants { member, tracks });
                        }
                    }
                    _ => {}
                }
            }
            FromParent::Gone(reason) => {
                if self.local.is_some() {
                    warn!(room = %self.room_id, %reason, "cascade: room link upwards lost");
                }
                self.drop_local();
            }
        }
    }
}

/// What the local participant (the parent's stand-in) is told by its Device and room.
#[derive(Message)]
#[rtype(result = "()")]
struct FromLocal(ServerMessage);

impl Handler<FromLocal> for RoomUplink {
    type Result = ();
    fn handle(&mut self, FromLocal(m): FromLocal, _: &mut Self::Context) {
        match m {
            // Our subscribe peer's offer (local tracks) is our publish offer upstairs ...
            ServerMessage::SubscribeOffer { sdp } => self.send_up(json!({"type": "publish_offer", "sdp": sdp})),
            // ... and our publish peer's answer answers the parent's subscribe offer.
            ServerMessage::PublishAnswer { sdp } => self.send_up(json!({"type": "subscribe_answer", "sdp": sdp})),
            // Which of the parent's tracks someone here watches: the parent pauses the rest.
            ServerMessage::CascadeWanted { tracks } => {
                self.send_up(json!({"type": "cascade_wanted", "tracks": tracks}))
            }
            // Our dynacast for one of the parent's simulcast tracks: the parent sends down
            // only what is watched here.
            ServerMessage::PublishLayers { mid, active } => {
                self.send_up(json!({"type": "link_layers", "mid": mid, "active": active}))
            }
            ServerMessage::Error { error, message } => {
                warn!(room = %self.room_id, %error, %message, "cascade: local side of the room link")
            }
            _ => {}
        }
    }
}

const RETRY: Duration = Duration::from_secs(1);

/// The thread: stay joined to the parent's room, relay frames both ways, rejoin on failure.
fn conference_client(parent: ParentRooms, room: String, outgoing: Receiver<String>, report: impl Fn(FromParent)) {
    loop {
        // Whatever was queued for a connection that died is stale.
        loop {
            match outgoing.try_recv() {
                Ok(_) => continue,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        match session(&parent, &room, &outgoing, &report) {
            Ok(()) => return,
            Err(reason) => {
                debug!(%room, %reason, "cascade room link");
                report(FromParent::Gone(reason));
            }
        }
        std::thread::sleep(RETRY);
    }
}

fn session(
    parent: &ParentRooms,
    room: &str,
    outgoing: &Receiver<String>,
    report: &impl Fn(FromParent),
) -> Result<(), String> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let link = crate::cascade::uplink::link_url(&parent.parent_url, "")?;
    let host = link.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string();
    let url = format!("ws://{host}/api/v1/rooms/{room}/ws?token={}", token::mint(&parent.secret, &parent.node, now));
    let addr = host.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_millis(20))).map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).ok();
    let (mut ws, _) = tungstenite::client(url.as_str(), tcp).map_err(|e| format!("join {room} upstairs: {e}"))?;
    let hello = json!({"type": "join", "name": format!("cascade:{}", parent.node)});
    ws.send(Message::text(hello.to_string())).map_err(|e| e.to_string())?;
    let mut joined = false;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == "joined" && !joined {
                    joined = true;
                    report(FromParent::Joined);
                } else if v["type"] == "room_closed" {
                    report(FromParent::Message(v));
                    return Err("the parent's room closed".into());
                } else {
                    report(FromParent::Message(v));
                }
            }
            Ok(Message::Close(_)) => return Err("the parent closed the connection".into()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        loop {
            match outgoing.try_recv() {
                Ok(text) => ws.send(Message::text(text)).map_err(|e| format!("send: {e}"))?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = ws.close(None);
                    return Ok(());
                }
            }
        }
    }
}
