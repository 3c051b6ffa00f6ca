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
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;
use tracing::{debug, info, warn};
use tungstenite::Message;

use crate::cascade::health::DOWN_AFTER;
use crate::cascade::token;
use crate::device::{Device, FromClient, LinkLayers, StartSubscribing, Stop};
use crate::protocol::{ClientMessage, LabelledSource, ParticipantInfo, Role, ServerMessage, TrackInfo};
use crate::room::{Endpoint, Join, LinkSources, LinkWants, Room};

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
    /// Venues by track, both ways (see `Sources`).
    up: Sources,
    down: Sources,
}

/// The venue behind each track one side of the link has, learnt from the conference messages
/// that side sends (`TrackInfo::source`), so the other side can name it: what this node's room
/// has goes up as `track_sources`, what the parent's room has goes to the local room as the
/// stand-in's `LinkSources`.
#[derive(Default)]
struct Sources {
    /// Our own participant on that side: its tracks came over this link and do not go back.
    own: Option<String>,
    /// Track id → (participant id, venue).
    tracks: std::collections::BTreeMap<String, (String, Option<crate::protocol::TrackSource>)>,
    /// As last passed on.
    sent: Option<Vec<LabelledSource>>,
}

impl Sources {
    fn learn_track(&mut self, t: &TrackInfo) {
        self.tracks.insert(t.id.clone(), (t.participant_id.clone(), t.source.clone()));
    }

    fn learn_participant(&mut self, p: &ParticipantInfo) {
        for t in &p.tracks {
            self.learn_track(t);
        }
    }

    /// Take in one of that side's messages (the conference protocol, as JSON).
    fn learn(&mut self, v: &Value) {
        let parse = |key: &str| v.get(key).cloned();
        match v["type"].as_str() {
            Some("joined") => {
                self.tracks.clear();
                self.own = v["participant_id"].as_str().map(str::to_string);
                let participants: Vec<ParticipantInfo> =
                    parse("participants").and_then(|p| serde_json::from_value(p).ok()).unwrap_or_default();
                participants.iter().for_each(|p| self.learn_participant(p));
            }
            Some("participant_joined") => {
                if let Some(p) = parse("participant").and_then(|p| serde_json::from_value(p).ok()) {
                    self.learn_participant(&p);
                }
            }
            Some("track_published") => {
                if let Some(t) = parse("track").and_then(|t| serde_json::from_value(t).ok()) {
                    self.learn_track(&t);
                }
            }
            Some("track_source") => {
                let source = parse("source").and_then(|s| serde_json::from_value(s).ok());
                if let (Some(id), Some(entry)) = (v["track_id"].as_str(), source) {
                    if let Some(t) = self.tracks.get_mut(id) {
                        t.1 = Some(entry);
                    }
                }
            }
            Some("track_unpublished") => {
                if let Some(id) = v["track_id"].as_str() {
                    self.tracks.remove(id);
                }
            }
            Some("participant_left") => {
                if let Some(p) = v["participant_id"].as_str() {
                    self.tracks.retain(|_, (owner, _)| owner != p);
                }
            }
            _ => {}
        }
    }

    /// What to pass on, if it changed since last time.
    fn changed(&mut self) -> Option<Vec<LabelledSource>> {
        let now: Vec<LabelledSource> = self
            .tracks
            .iter()
            .filter(|(_, (owner, _))| Some(owner) != self.own.as_ref())
            .filter_map(|(id, (_, s))| {
                s.as_ref().map(|s| LabelledSource {
                    label: id.clone(),
                    node: s.node.clone(),
                    participant: s.participant.clone(),
                })
            })
            .collect();
        if self.sent.as_ref() == Some(&now) {
            return None;
        }
        self.sent = Some(now.clone());
        Some(now)
    }
}

impl RoomUplink {
    pub fn new(room_id: String, room: Addr<Room>, parent: ParentRooms) -> Self {
        Self {
            room_id,
            room,
            parent,
            to_parent: None,
            local: None,
            member: None,
            up: Sources::default(),
            down: Sources::default(),
        }
    }

    fn send_up(&self, v: Value) {
        if let Some(tx) = &self.to_parent {
            let _ = tx.send(v.to_string());
        }
    }

    /// Tell the local room the venues behind the parent's tracks, when they change.
    fn sources_down(&mut self) {
        let Some(member) = self.member else { return };
        if let Some(sources) = self.down.changed() {
            self.room.do_send(LinkSources { member, sources });
        }
    }

    fn drop_local(&mut self) {
        self.member = None;
        self.up = Sources::default();
        self.down.sent = None;
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

/// Leave the parent's room (the parent changed, or the room closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopUplink;

impl Handler<StopUplink> for RoomUplink {
    type Result = ();
    fn handle(&mut self, _: StopUplink, ctx: &mut Self::Context) {
        ctx.stop();
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
                        act.sources_down();
                    }),
                );
            }
            FromParent::Message(v) => {
                debug!(room = %self.room_id, kind = %v["type"], "cascade: from the parent's room");
                // Before an offer that brings a track, the local room learns whose it is.
                self.down.learn(&v);
                self.sources_down();
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
        // The local room's news of tracks reaches us before the offer that carries them up;
        // the parent's room hears whose they are first.
        if matches!(
            m,
            ServerMessage::Joined { .. }
                | ServerMessage::ParticipantJoined { .. }
                | ServerMessage::ParticipantLeft { .. }
                | ServerMessage::TrackPublished { .. }
                | ServerMessage::TrackUnpublished { .. }
                | ServerMessage::TrackSource { .. }
        ) {
            if let Ok(v) = serde_json::to_value(&m) {
                self.up.learn(&v);
            }
            if let Some(tracks) = self.up.changed() {
                self.send_up(json!({"type": "track_sources", "tracks": tracks}));
            }
            return;
        }
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
    // The parent pings a link's socket every half second (and our reads answer): a parent
    // that stops being heard is as gone as one that closed, and we join again.
    let mut heard = Instant::now();
    loop {
        let frame = ws.read();
        if frame.is_ok() {
            heard = Instant::now();
        } else if heard.elapsed() >= DOWN_AFTER {
            return Err(format!("the parent's room silent for {} ms", heard.elapsed().as_millis()));
        }
        match frame {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == "joined" && !joined {
                    joined = true;
                    report(FromParent::Joined);
                    report(FromParent::Message(v));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &[LabelledSource]) -> Vec<String> {
        s.iter().map(|l| format!("{}={}/{}", l.label, l.node, l.participant)).collect()
    }

    #[test]
    fn the_venues_behind_a_rooms_tracks_are_passed_on_when_they_change() {
        let mut s = Sources::default();
        s.learn(&json!({"type": "joined", "participant_id": "p9", "role": "speaker", "room": {"id": "c", "name": "c"},
            "participants": [
                {"id": "p1", "name": "venue", "role": "speaker", "tracks": [
                    {"id": "t1", "participant_id": "p1", "kind": "video", "muted": false,
                     "source": {"node": "county", "participant": "venue"}}]},
                {"id": "p2", "name": "cascade:township", "role": "speaker", "tracks": [
                    {"id": "t2", "participant_id": "p2", "kind": "video", "muted": false}]}]}));
        // The township's track has no venue yet: only the county's goes on.
        assert_eq!(labels(&s.changed().unwrap()), ["t1=county/venue"]);
        assert!(s.changed().is_none(), "nothing new, nothing sent");
        s.learn(&json!({"type": "track_source", "track_id": "t2", "participant_id": "p2",
            "source": {"node": "township", "participant": "hall"}}));
        assert_eq!(labels(&s.changed().unwrap()), ["t1=county/venue", "t2=township/hall"]);
        // Our own participant's tracks came over this link: they do not go back.
        s.learn(&json!({"type": "track_published", "track": {"id": "t3", "participant_id": "p9", "kind": "audio",
            "muted": false, "source": {"node": "province", "participant": "chair"}}}));
        assert!(s.changed().is_none());
        s.learn(&json!({"type": "participant_left", "participant_id": "p1"}));
        assert_eq!(labels(&s.changed().unwrap()), ["t2=township/hall"]);
        s.learn(&json!({"type": "track_unpublished", "track_id": "t2", "participant_id": "p2"}));
        assert_eq!(labels(&s.changed().unwrap()), Vec::<String>::new());
    }
}
