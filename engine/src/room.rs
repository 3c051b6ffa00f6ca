//! The Room actor: who is in the room, what they publish, who receives what, and who may do
//! what (host, speaker, attendee). It holds no media: it commands the room's media worker and
//! tells clients what changed.

mod cascade;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};

use sfu::{PeerId, RoomId, TrackId, TrackKind, WorkerCommand, WorkerEvent, WorkerHandle};

use crate::node::{Node, RoomCount};
use crate::protocol::{Kind, ParticipantInfo, Role, RoomInfo, ServerMessage, TrackInfo, TrackSource};

pub use cascade::{CascadeControl, LinkSources, LinkWants};

pub type MemberId = u64;

/// What kind of endpoint a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Browser, mobile or console speaking the conference WebSocket.
    Conference,
    /// Another node's end of a cascade link, speaking the conference WebSocket: it behaves as
    /// a conference member (publishes its venue's tracks, receives the rest) but is not a
    /// person (a venue-wide mute leaves it alone).
    Cascade,
    /// On a child node, the participant that stands for the parent's room (cascade::media): it
    /// receives only what the parent says it needs (`cascade_wanted`), so a venue crosses the
    /// link only if someone above watches it.
    Parent,
    Whip,
    Whep,
}

impl Endpoint {
    /// Either end of a cascade link (another node, not a person).
    pub fn is_link(self) -> bool {
        matches!(self, Endpoint::Cascade | Endpoint::Parent)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerPurpose {
    Publish,
    Subscribe,
}

struct Member {
    name: String,
    role: Role,
    endpoint: Endpoint,
    out: Option<UnboundedSender<ServerMessage>>,
    publish: Option<PeerId>,
    subscribe: Option<PeerId>,
    /// Tracks this member chose not to receive.
    unsubscribed: HashSet<TrackId>,
    /// Tracks it receives paused (a hidden tile: `set_quality` with `paused`).
    paused: HashSet<TrackId>,
    /// A link (`Parent` or `Cascade`): the tracks the other end needs (none until it says).
    wants: HashSet<TrackId>,
    /// A link: the labels of the tracks that came over it that someone here receives, as last
    /// told to the other end.
    demand_sent: Option<Vec<String>>,
    /// A WHEP viewer: what it asked of the video it is shown (WHEP's layer extension), kept
    /// for whichever track that is as the main speaker changes.
    main_video: sfu::LayerConstraint,
    /// A link: the venue behind each of its tracks, by label (`track_sources`).
    sources: HashMap<String, TrackSource>,
}

struct RoomTrack {
    owner: MemberId,
    /// The publisher's name for it (its msid track id): what a child node's link knows it by.
    label: String,
    kind: TrackKind,
    muted: bool,
}

pub struct Room {
    id: RoomId,
    name: String,
    /// This node's name in the cascade: the `source` of the tracks published here.
    node_name: Arc<str>,
    node: Addr<Node>,
    worker: WorkerHandle,
    members: HashMap<MemberId, Member>,
    peer_owner: HashMap<PeerId, MemberId>,
    tracks: HashMap<TrackId, RoomTrack>,
    /// Publication order, so "the first publisher" is well defined.
    track_order: Vec<TrackId>,
    next_member: MemberId,
    active_speaker: Option<MemberId>,
    /// A lock from a higher level (venue, by): members joining later are told at once.
    locked_view: Option<(String, String)>,
}

pub fn participant_id(m: MemberId) -> String {
    format!("p{m}")
}

pub fn track_id(t: TrackId) -> String {
    format!("t{t}")
}

fn parse_id(s: &str, prefix: char) -> Option<u64> {
    s.strip_prefix(prefix)?.parse().ok()
}

impl Room {
    pub fn new(id: RoomId, name: String, node_name: Arc<str>, node: Addr<Node>, worker: WorkerHandle) -> Self {
        Self {
            id,
            name,
            node_name,
            node,
            worker,
            members: HashMap::new(),
            peer_owner: HashMap::new(),
            tracks: HashMap::new(),
            track_order: Vec::new(),
            next_member: 1,
            active_speaker: None,
            locked_view: None,
        }
    }

    fn command(&self, cmd: WorkerCommand) {
        if self.worker.send(cmd).is_err() {
            tracing::error!(room = %self.id, "media worker is gone");
        }
    }

    fn track_info(&self, t: TrackId) -> Option<TrackInfo> {
        let rt = self.tracks.get(&t)?;
        Some(TrackInfo {
            id: track_id(t),
            participant_id: participant_id(rt.owner),
            kind: rt.kind.into(),
            muted: rt.muted,
            source: self.source_of(rt),
        })
    }

    /// A link's track comes from the venue its other end names; any other from its publisher.
    fn source_of(&self, rt: &RoomTrack) -> Option<TrackSource> {
        let owner = self.members.get(&rt.owner)?;
        if owner.endpoint.is_link() {
            owner.sources.get(&rt.label).cloned()
        } else {
            Some(TrackSource { node: self.node_name.to_string(), participant: owner.name.clone() })
        }
    }

    fn participant_info(&self, id: MemberId) -> Option<ParticipantInfo> {
        let m = self.members.get(&id)?;
        let tracks = self
            .track_order
            .iter()
            .filter(|t| self.tracks[t].owner == id)
            .filter_map(|t| self.track_info(*t))
            .collect();
        Some(ParticipantInfo { id: participant_id(id), name: m.name.clone(), role: m.role, tracks })
    }

    fn broadcast(&self, msg: ServerMessage, except: Option<MemberId>) {
        for (id, m) in &self.members {
            if Some(*id) != except {
                if let Some(out) = &m.out {
                    let _ = out.send(msg.clone());
                }
            }
        }
    }

    fn send_to(&self, member: MemberId, msg: ServerMessage) {
        if let Some(out) = self.members.get(&member).and_then(|m| m.out.as_ref()) {
            let _ = out.send(msg);
        }
    }

    fn report_count(&self) {
        self.node.do_send(RoomCount { room: self.id.clone(), participants: self.members.len() });
    }

    /// What WHEP viewers get: the active speaker's video, else the first published video, and
    /// the audio of the same participant.
    fn main_tracks(&self) -> (Option<TrackId>, Option<TrackId>) {
        let first_video = |only: Option<MemberId>| {
            self.track_order
                .iter()
                .copied()
                .find(|t| self.tracks[t].kind == TrackKind::Video && only.is_none_or(|o| self.tracks[t].owner == o))
        };
        let video = self.active_speaker.and_then(|s| first_video(Some(s))).or_else(|| first_video(None));
        let owner = video.map(|v| self.tracks[&v].owner).or(self.active_speaker);
        let audio = self.track_order.iter().copied().find(|t| {
            self.tracks[t].kind == TrackKind::Audio && (owner.is_none() || Some(self.tracks[t].owner) == owner)
        });
        (video, audio)
    }

    /// Give every subscriber what it should receive now.
    fn subscribe_member(&self, member: MemberId) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let Some(peer) = m.subscribe else { return };
        match m.endpoint {
            Endpoint::Whep => {
                let (video, audio) = self.main_tracks();
                if let Some(track) = video.filter(|_| m.main_video != Default::default()) {
                    // Before the switch: the new source starts on the layer asked for.
                    self.command(WorkerCommand::SetConstraint { subscriber: peer, track, constraint: m.main_video });
                }
                for t in [video, audio].into_iter().flatten() {
                    self.command(WorkerCommand::Subscribe {
                        subscriber: peer,
                        track: t,
                        stream_id: participant_id(self.tracks[&t].owner),
                    });
                }
            }
            Endpoint::Conference | Endpoint::Cascade | Endpoint::Parent => {
                for t in &self.track_order {
                    let rt = &self.tracks[t];
                    if rt.owner != member && !m.unsubscribed.contains(t) {
                        self.subscribe_one(m, peer, *t, rt.owner);
                    }
                }
            }
            Endpoint::Whip => {}
        }
    }

    /// Forward `track` to member `m`'s subscribe peer. A link gets it paused unless the node at
    /// its other end needs it (the pause goes first: not one packet crosses unneeded).
    fn subscribe_one(&self, m: &Member, peer: PeerId, track: TrackId, owner: MemberId) {
        if matches!(m.endpoint, Endpoint::Parent | Endpoint::Cascade) && !m.wants.contains(&track) {
            let constraint = sfu::LayerConstraint { paused: true, ..Default::default() };
            self.command(WorkerCommand::SetConstraint { subscriber: peer, track, constraint });
        }
        self.command(WorkerCommand::Subscribe { subscriber: peer, track, stream_id: participant_id(owner) });
    }

    fn remove_track(&mut self, track: TrackId) {
        let Some(rt) = self.tracks.remove(&track) else {
            return;
        };
        self.track_order.retain(|t| *t != track);
        for m in self.members.values() {
            if let Some(peer) = m.subscribe {
                self.command(WorkerCommand::Unsubscribe { subscriber: peer, track });
            }
        }
        self.broadcast(
            ServerMessage::TrackUnpublished { track_id: track_id(track), participant_id: participant_id(rt.owner) },
            None,
        );
        self.refresh_whep();
        self.update_demand();
    }

    fn refresh_whep(&self) {
        for (id, m) in &self.members {
            if m.endpoint == Endpoint::Whep {
                self.subscribe_member(*id);
            }
        }
    }

    fn remove_member(&mut self, member: MemberId) {
        let Some(m) = self.members.remove(&member) else {
            return;
        };
        for peer in [m.publish, m.subscribe].into_iter().flatten() {
            self.peer_owner.remove(&peer);
            self.command(WorkerCommand::ClosePeer { peer });
        }
        let owned: Vec<TrackId> = self.track_order.iter().copied().filter(|t| self.tracks[t].owner == member).collect();
        for t in owned {
            self.remove_track(t);
        }
        if self.active_speaker == Some(member) {
            self.active_speaker = None;
        }
        sfu::metrics::METRICS.participants.dec();
        info!(room = %self.id, member, "left");
        self.broadcast(ServerMessage::ParticipantLeft { participant_id: participant_id(member) }, None);
        self.report_count();
    }
}

impl Actor for Room {
    type Context = Context<Self>;
}

// ------------------------------------------------------------------ messages

/// A member joins. Conference members get `joined` and all later events on `out`.
#[derive(Message)]
#[rtype(result = "Joined")]
pub struct Join {
    pub name: String,
    pub role: Role,
    pub endpoint: Endpoint,
    pub out: Option<UnboundedSender<ServerMessage>>,
}

pub struct Joined {
    pub member: MemberId,
    pub worker: WorkerHandle,
    pub room: RoomId,
}

impl<A, M> actix::dev::MessageResponse<A, M> for Joined
where
    A: Actor,
    M: Message<Result = Joined>,
{
    fn handle(self, _: &mut A::Context, tx: Option<actix::dev::OneshotSender<M::Result>>) {
        if let Some(tx) = tx {
            let _ = tx.send(self);
        }
    }
}

impl Handler<Join> for Room {
    type Result = Joined;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Joined {
        let member = self.next_member;
        self.next_member += 1;
        let participants: Vec<ParticipantInfo> =
            self.members.keys().filter_map(|id| self.participant_info(*id)).collect();
        if let Some(out) = &msg.out {
            let _ = out.send(ServerMessage::Joined {
                participant_id: participant_id(member),
                role: msg.role,
                room: RoomInfo { id: self.id.to_string(), name: self.name.clone() },
                participants,
            });
            if let Some((venue, by)) = &self.locked_view {
                let _ = out.send(ServerMessage::ViewLocked { venue: venue.clone(), by: by.clone() });
            }
        }
        let info =
            ParticipantInfo { id: participant_id(member), name: msg.name.clone(), role: msg.role, tracks: vec![] };
        self.broadcast(ServerMessage::ParticipantJoined { participant: info }, None);
        self.members.insert(
            member,
            Member {
                name: msg.name,
                role: msg.role,
                endpoint: msg.endpoint,
                out: msg.out,
                publish: None,
                subscribe: None,
                unsubscribed: HashSet::new(),
                paused: HashSet::new(),
                wants: HashSet::new(),
                demand_sent: None,
                main_video: Default::default(),
                sources: HashMap::new(),
            },
        );
        sfu::metrics::METRICS.participants.inc();
        info!(room = %self.id, member, "joined");
        self.report_count();
        Joined { member, worker: self.worker.clone(), room: self.id.clone() }
    }
}

/// Register a peer before it is created on the worker, so its first events find their owner.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AttachPeer {
    pub member: MemberId,
    pub peer: PeerId,
    pub purpose: PeerPurpose,
}

impl Handler<AttachPeer> for Room {
    type Result = bool;
    fn handle(&mut self, msg: AttachPeer, _: &mut Context<Self>) -> bool {
        let Some(m) = self.members.get_mut(&msg.member) else {
            return false;
        };
        match msg.purpose {
            PeerPurpose::Publish => m.publish = Some(msg.peer),
            PeerPurpose::Subscribe => m.subscribe = Some(msg.peer),
        }
        self.peer_owner.insert(msg.peer, msg.member);
        true
    }
}

/// The peer now exists on the worker: start feeding it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerReady {
    pub member: MemberId,
}

impl Handler<PeerReady> for Room {
    type Result = ();
    fn handle(&mut self, msg: PeerReady, _: &mut Context<Self>) {
        self.subscribe_member(msg.member);
        self.update_demand();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub member: MemberId,
}

impl Handler<Leave> for Room {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.remove_member(msg.member);
    }
}

/// A member mutes or unmutes its own track of `kind`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Mute {
    pub member: MemberId,
    pub kind: Kind,
    pub muted: bool,
}

impl Handler<Mute> for Room {
    type Result = ();
    fn handle(&mut self, msg: Mute, _: &mut Context<Self>) {
        let ids: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.owner == msg.member && Kind::from(t.kind) == msg.kind && t.muted != msg.muted)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(t) = self.tracks.get_mut(&id) {
                t.muted = msg.muted;
            }
            self.command(WorkerCommand::SetMuted { track: id, muted: msg.muted });
            self.broadcast(
                ServerMessage::TrackMuted {
                    track_id: track_id(id),
                    participant_id: participant_id(msg.member),
                    kind: msg.kind,
                    muted: msg.muted,
                },
                None,
            );
        }
    }
}

/// The host mutes someone else. Refused for anyone but the host.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct MuteParticipant {
    pub by: MemberId,
    pub target: String,
    pub kind: Kind,
    pub muted: bool,
}

impl Handler<MuteParticipant> for Room {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: MuteParticipant, ctx: &mut Context<Self>) -> Self::Result {
        let by = self.members.get(&msg.by).ok_or("not in the room")?;
        if by.role != Role::Host {
            return Err("only the host can mute others".into());
        }
        let by_name = by.name.clone();
        let target =
            parse_id(&msg.target, 'p').filter(|t| self.members.contains_key(t)).ok_or("no such participant")?;
        self.send_to(target, ServerMessage::MuteRequested { kind: msg.kind, muted: msg.muted, by: by_name });
        <Self as Handler<Mute>>::handle(self, Mute { member: target, kind: msg.kind, muted: msg.muted }, ctx);
        Ok(())
    }
}

/// A member chooses to receive, or stop receiving, one track.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SetSubscription {
    pub member: MemberId,
    pub track: String,
    pub on: bool,
}

impl Handler<SetSubscription> for Room {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: SetSubscription, _: &mut Context<Self>) -> Self::Result {
        let track = parse_id(&msg.track, 't').filter(|t| self.tracks.contains_key(t)).ok_or("no such track")?;
        let owner = self.tracks[&track].owner;
        let m = self.members.get_mut(&msg.member).ok_or("not in the room")?;
        let peer = m.subscribe.ok_or("no subscribe connection")?;
        if msg.on {
            m.unsubscribed.remove(&track);
            self.command(WorkerCommand::Subscribe { subscriber: peer, track, stream_id: participant_id(owner) });
        } else {
            m.unsubscribed.insert(track);
            self.command(WorkerCommand::Unsubscribe { subscriber: peer, track });
        }
        self.update_demand();
        Ok(())
    }
}

/// A member's wishes for one track it receives (tile size, frame rate, hidden).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SetQuality {
    pub member: MemberId,
    pub track: String,
    pub constraint: sfu::LayerConstraint,
}

impl Handler<SetQuality> for Room {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: SetQuality, _: &mut Context<Self>) -> Self::Result {
        let track = parse_id(&msg.track, 't').filter(|t| self.tracks.contains_key(t)).ok_or("no such track")?;
        let m = self.members.get_mut(&msg.member).ok_or("not in the room")?;
        let subscriber = m.subscribe.ok_or("no subscribe connection")?;
        if msg.constraint.paused {
            m.paused.insert(track);
        } else {
            m.paused.remove(&track);
        }
        self.command(WorkerCommand::SetConstraint { subscriber, track, constraint: msg.constraint });
        self.update_demand();
        Ok(())
    }
}

/// A WHEP viewer's wishes for the video it is shown (WHEP's layer extension): the height of
/// its player, a frame-rate cap.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SetMainVideoLayer {
    pub member: MemberId,
    pub constraint: sfu::LayerConstraint,
}

impl Handler<SetMainVideoLayer> for Room {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: SetMainVideoLayer, _: &mut Context<Self>) -> Self::Result {
        let m =
            self.members.get_mut(&msg.member).filter(|m| m.endpoint == Endpoint::Whep).ok_or("not a WHEP viewer")?;
        m.main_video = msg.constraint;
        let subscriber = m.subscribe.ok_or("no connection")?;
        if let (Some(track), _) = self.main_tracks() {
            self.command(WorkerCommand::SetConstraint { subscriber, track, constraint: msg.constraint });
        }
        Ok(())
    }
}

/// An event from the media worker about one of this room's peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Media(pub WorkerEvent);

impl Handler<Media> for Room {
    type Result = ();
    fn handle(&mut self, Media(ev): Media, _: &mut Context<Self>) {
        match ev {
            WorkerEvent::TrackPublished { peer, track, kind, label, .. } => {
                let Some(&owner) = self.peer_owner.get(&peer) else {
                    self.command(WorkerCommand::ClosePeer { peer });
                    return;
                };
                if self.members.get(&owner).is_some_and(|m| m.role == Role::Attendee) {
                    return; // attendees receive only; their media is not forwarded
                }
                self.tracks.insert(track, RoomTrack { owner, kind, label, muted: false });
                self.track_order.push(track);
                if let Some(info) = self.track_info(track) {
                    self.broadcast(ServerMessage::TrackPublished { track: info }, None);
                }
                for (id, m) in &self.members {
                    if *id != owner && matches!(m.endpoint, Endpoint::Conference | Endpoint::Cascade | Endpoint::Parent)
                    {
                        if let Some(sub) = m.subscribe {
                            self.subscribe_one(m, sub, track, owner);
                        }
                    }
                }
                self.refresh_whep();
                self.update_demand();
            }
            WorkerEvent::TrackEnded { track, .. } => self.remove_track(track),
            WorkerEvent::PublishLayers { peer, mid, active, .. } => {
                if let Some(&owner) = self.peer_owner.get(&peer) {
                    self.send_to(owner, ServerMessage::PublishLayers { mid, active });
                }
            }
            WorkerEvent::SubscribeOffer { peer, sdp, .. } => {
                if let Some(&owner) = self.peer_owner.get(&peer) {
                    self.send_to(owner, ServerMessage::SubscribeOffer { sdp });
                }
            }
            WorkerEvent::PeerClosed { peer, .. } => {
                let Some(owner) = self.peer_owner.remove(&peer) else {
                    return;
                };
                let Some(m) = self.members.get_mut(&owner) else {
                    return;
                };
                if m.publish == Some(peer) {
                    m.publish = None;
                }
                if m.subscribe == Some(peer) {
                    m.subscribe = None;
                }
                // A WHIP/WHEP session is its one peer; a conference member stays while its
                // WebSocket is open (it can publish again).
                if !matches!(m.endpoint, Endpoint::Conference | Endpoint::Cascade | Endpoint::Parent) {
                    self.remove_member(owner);
                }
            }
            WorkerEvent::ActiveSpeaker { track, .. } => {
                let Some(owner) = self.tracks.get(&track).map(|t| t.owner) else { return };
                if self.active_speaker != Some(owner) {
                    self.active_speaker = Some(owner);
                    self.broadcast(ServerMessage::ActiveSpeaker { participant_id: participant_id(owner) }, None);
                    self.refresh_whep();
                    self.update_demand();
                }
            }
            WorkerEvent::PeerConnected { peer, .. } => {
                debug!(room = %self.id, peer, "peer connected")
            }
        }
    }
}

/// Close the room: everyone is told and disconnected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseRoom {
    pub reason: String,
}

impl Handler<CloseRoom> for Room {
    type Result = ();
    fn handle(&mut self, msg: CloseRoom, ctx: &mut Context<Self>) {
        self.broadcast(ServerMessage::RoomClosed { reason: msg.reason }, None);
        let ids: Vec<MemberId> = self.members.keys().copied().collect();
        for id in ids {
            self.remove_member(id);
        }
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "Vec<ParticipantInfo>")]
pub struct Snapshot;

impl Handler<Snapshot> for Room {
    type Result = MessageResult<Snapshot>;
    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        let mut ids: Vec<MemberId> = self.members.keys().copied().collect();
        ids.sort_unstable();
        MessageResult(ids.into_iter().filter_map(|id| self.participant_info(id)).collect())
    }
}
