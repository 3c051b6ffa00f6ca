//! The Device actor: one connected endpoint (a browser on the conference WebSocket, or a
//! WHIP/WHEP client) and its peer connections. It turns client requests into room messages
//! and worker commands; each request is handled to the end before the next (`ctx.wait`), so
//! negotiation steps never overtake each other.

use actix::prelude::*;
use tokio::sync::{mpsc::UnboundedSender, oneshot};
use tracing::debug;

use sfu::{next_id, PeerId, PeerKind, PeerPlace, SfuError, WorkerCommand, WorkerHandle};

use crate::protocol::{ClientMessage, Role, ServerMessage};
use crate::room::{
    AttachPeer, Leave, LinkSources, LinkWants, MemberId, Mute, MuteParticipant, PeerPurpose, PeerReady, Room,
    SetQuality, SetSubscription,
};

pub struct Device {
    member: MemberId,
    role: Role,
    room: Addr<Room>,
    worker: WorkerHandle,
    out: Option<UnboundedSender<ServerMessage>>,
    publish: Option<PeerId>,
    subscribe: Option<PeerId>,
    room_id: sfu::RoomId,
    /// A client's device, or a node's end of a cascade link.
    place: PeerPlace,
}

impl Device {
    pub fn new(
        member: MemberId,
        role: Role,
        room: Addr<Room>,
        room_id: sfu::RoomId,
        worker: WorkerHandle,
        out: Option<UnboundedSender<ServerMessage>>,
    ) -> Self {
        Self { member, role, room, worker, out, publish: None, subscribe: None, room_id, place: PeerPlace::Client }
    }

    /// This device's peers run full ICE: it is a node's end of a cascade link, whose other
    /// end is a yunshi (ICE lite) that cannot start the checks.
    pub fn dialling(mut self) -> Self {
        self.place = PeerPlace::LinkChild;
        self
    }

    /// This device is the parent node's end of a cascade link (a child node dialled in).
    pub fn cascade_link(mut self) -> Self {
        self.place = PeerPlace::LinkParent;
        self
    }

    fn reply(&self, msg: ServerMessage) {
        if let Some(out) = &self.out {
            let _ = out.send(msg);
        }
    }
}

impl Actor for Device {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.room.do_send(Leave { member: self.member });
    }
}

async fn ask<T>(
    worker: &WorkerHandle,
    make: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> WorkerCommand,
) -> Result<T, SfuError> {
    let (tx, rx) = oneshot::channel();
    worker.send(make(tx))?;
    rx.await.map_err(|_| SfuError::WorkerGone)?
}

/// Create a peer for this device: register it with the room, create it on the worker, then
/// let the room start feeding it. Returns the worker's SDP (answer, or offer for Subscribe).
async fn create_peer(
    room: Addr<Room>,
    worker: WorkerHandle,
    room_id: sfu::RoomId,
    member: MemberId,
    kind: PeerKind,
    offer: Option<String>,
    place: PeerPlace,
) -> Result<(PeerId, String), SfuError> {
    let peer = next_id();
    let purpose = if kind.publishes() { PeerPurpose::Publish } else { PeerPurpose::Subscribe };
    if !room.send(AttachPeer { member, peer, purpose }).await.unwrap_or(false) {
        return Err(SfuError::Rejected("not in the room".into()));
    }
    let sdp =
        ask(&worker, |reply| WorkerCommand::CreatePeer { peer, room: room_id, kind, offer, place, reply }).await?;
    room.do_send(PeerReady { member });
    Ok((peer, sdp))
}

fn sdp_error(e: &SfuError) -> ServerMessage {
    match e {
        SfuError::BadSdp(m) => ServerMessage::error("bad_sdp", m.clone()),
        other => ServerMessage::error("rejected", other.to_string()),
    }
}

/// Open the subscribe connection of a conference device (sent right after `joined`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartSubscribing;

impl Handler<StartSubscribing> for Device {
    type Result = ();
    fn handle(&mut self, _: StartSubscribing, ctx: &mut Context<Self>) {
        let fut = create_peer(
            self.room.clone(),
            self.worker.clone(),
            self.room_id.clone(),
            self.member,
            PeerKind::Subscribe,
            None,
            self.place,
        );
        ctx.wait(fut.into_actor(self).map(|r, act, _| match r {
            Ok((peer, sdp)) => {
                act.subscribe = Some(peer);
                act.reply(ServerMessage::SubscribeOffer { sdp });
            }
            Err(e) => act.reply(ServerMessage::error("internal", e.to_string())),
        }));
    }
}

/// One message from the conference WebSocket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromClient(pub ClientMessage);

impl Handler<FromClient> for Device {
    type Result = ();
    fn handle(&mut self, FromClient(msg): FromClient, ctx: &mut Context<Self>) {
        match msg {
            ClientMessage::Join { .. } => self.reply(ServerMessage::error("bad_request", "already joined")),
            ClientMessage::PublishOffer { sdp } => {
                if self.role == Role::Attendee {
                    return self.reply(ServerMessage::error("forbidden", "attendees cannot publish"));
                }
                match self.publish {
                    None => {
                        let fut = create_peer(
                            self.room.clone(),
                            self.worker.clone(),
                            self.room_id.clone(),
                            self.member,
                            PeerKind::Publish,
                            Some(sdp),
                            self.place,
                        );
                        ctx.wait(fut.into_actor(self).map(|r, act, _| match r {
                            Ok((peer, sdp)) => {
                                act.publish = Some(peer);
                                act.reply(ServerMessage::PublishAnswer { sdp });
                            }
                            Err(e) => act.reply(sdp_error(&e)),
                        }));
                    }
                    Some(peer) => {
                        let worker = self.worker.clone();
                        let fut =
                            async move { ask(&worker, |reply| WorkerCommand::RemoteOffer { peer, sdp, reply }).await };
                        ctx.wait(fut.into_actor(self).map(|r, act, _| match r {
                            Ok(sdp) => act.reply(ServerMessage::PublishAnswer { sdp }),
                            Err(e) => act.reply(sdp_error(&e)),
                        }));
                    }
                }
            }
            ClientMessage::SubscribeAnswer { sdp } => {
                let Some(peer) = self.subscribe else {
                    return self.reply(ServerMessage::error("bad_request", "no subscribe offer is outstanding"));
                };
                let worker = self.worker.clone();
                let fut = async move { ask(&worker, |reply| WorkerCommand::RemoteAnswer { peer, sdp, reply }).await };
                ctx.wait(fut.into_actor(self).map(|r, act, _| {
                    if let Err(e) = r {
                        act.reply(sdp_error(&e));
                    }
                }));
            }
            ClientMessage::Mute { kind, muted } => self.room.do_send(Mute { member: self.member, kind, muted }),
            ClientMessage::MuteParticipant { participant_id, kind, muted } => {
                let fut = self.room.send(MuteParticipant { by: self.member, target: participant_id, kind, muted });
                ctx.wait(fut.into_actor(self).map(|r, act, _| match r {
                    Ok(Ok(())) => {}
                    Ok(Err(m)) => act.reply(ServerMessage::error("forbidden", m)),
                    Err(_) => act.reply(ServerMessage::error("internal", "room is gone")),
                }));
            }
            ClientMessage::Subscribe { track_id } | ClientMessage::Unsubscribe { track_id } if track_id.is_empty() => {
                self.reply(ServerMessage::error("bad_request", "track_id is empty"))
            }
            ClientMessage::Subscribe { track_id } => self.set_subscription(track_id, true, ctx),
            ClientMessage::Unsubscribe { track_id } => self.set_subscription(track_id, false, ctx),
            ClientMessage::SetQuality { track_id, max_height, max_temporal, paused } => {
                let constraint = sfu::LayerConstraint { max_height, max_temporal, paused: paused.unwrap_or(false) };
                let fut = self.room.send(SetQuality { member: self.member, track: track_id, constraint });
                ctx.wait(fut.into_actor(self).map(|r, act, _| {
                    if let Ok(Err(m)) = r {
                        act.reply(ServerMessage::error("not_found", m));
                    }
                }));
            }
            ClientMessage::Leave => ctx.stop(),
            ClientMessage::Ping => self.reply(ServerMessage::Pong),
            ClientMessage::CascadeWanted { tracks } => self.room.do_send(LinkWants { member: self.member, tracks }),
            ClientMessage::TrackSources { tracks } => {
                self.room.do_send(LinkSources { member: self.member, sources: tracks })
            }
            ClientMessage::LinkLayers { mid, active } => ctx.notify(LinkLayers { mid, active }),
        }
    }
}

/// What the node at the other end of a link watches of a simulcast track this device sends it
/// (that node's dynacast): streams above it are not sent across.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkLayers {
    pub mid: String,
    pub active: Vec<String>,
}

impl Handler<LinkLayers> for Device {
    type Result = ();
    fn handle(&mut self, LinkLayers { mid, active }: LinkLayers, _: &mut Context<Self>) {
        // Only a link's subscriptions relay every stream; a client's message is ignored.
        let (Some(subscriber), true) = (self.subscribe, self.place.on_link()) else { return };
        let _ = self.worker.send(WorkerCommand::SetLinkLayers { subscriber, mid, active });
    }
}

impl Device {
    fn set_subscription(&mut self, track: String, on: bool, ctx: &mut Context<Self>) {
        let fut = self.room.send(SetSubscription { member: self.member, track, on });
        ctx.wait(fut.into_actor(self).map(|r, act, _| {
            if let Ok(Err(m)) = r {
                act.reply(ServerMessage::error("not_found", m));
            }
        }));
    }
}

/// A WHIP or WHEP offer: create the device's single peer and answer.
#[derive(Message)]
#[rtype(result = "Result<String, SfuError>")]
pub struct Negotiate {
    pub kind: PeerKind,
    pub offer: String,
}

impl Handler<Negotiate> for Device {
    type Result = ResponseActFuture<Self, Result<String, SfuError>>;
    fn handle(&mut self, msg: Negotiate, _: &mut Context<Self>) -> Self::Result {
        let fut = create_peer(
            self.room.clone(),
            self.worker.clone(),
            self.room_id.clone(),
            self.member,
            msg.kind,
            Some(msg.offer),
            self.place,
        );
        Box::pin(fut.into_actor(self).map(|r, act, ctx| match r {
            Ok((peer, sdp)) => {
                act.publish = Some(peer);
                Ok(sdp)
            }
            Err(e) => {
                debug!("negotiation failed: {e}");
                ctx.stop();
                Err(e)
            }
        }))
    }
}

/// A WHEP viewer's layer request (`POST …/layer`), for the room.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SetLayer(pub sfu::LayerConstraint);

impl Handler<SetLayer> for Device {
    type Result = ResponseFuture<Result<(), String>>;
    fn handle(&mut self, SetLayer(constraint): SetLayer, _: &mut Context<Self>) -> Self::Result {
        let fut = self.room.send(crate::room::SetMainVideoLayer { member: self.member, constraint });
        Box::pin(async move { fut.await.unwrap_or_else(|_| Err("room is gone".into())) })
    }
}

/// End the device: its peers are closed and it leaves the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Device {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
