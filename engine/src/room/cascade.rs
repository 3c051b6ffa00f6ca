//! The room's part in a cascade (engine::cascade): which of a child link's tracks someone
//! here receives (told to the child, so a track crosses a link only while watched), what the
//! parent needs of this room (its stand-in receives only that), and control from above.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;

use sfu::{TrackId, WorkerCommand};

use super::{parse_id, participant_id, track_id, CloseRoom, Endpoint, Member, MemberId, Mute, Room};
use crate::protocol::{LabelledSource, ServerMessage, TrackSource};

impl Room {
    /// Does member `id` receive `track` now (forwarded and not paused)?
    fn receives(&self, id: MemberId, m: &Member, track: TrackId) -> bool {
        let Some(rt) = self.tracks.get(&track) else { return false };
        if rt.owner == id || m.subscribe.is_none() {
            return false;
        }
        match m.endpoint {
            Endpoint::Whep => {
                let (video, audio) = self.main_tracks();
                video == Some(track) || audio == Some(track)
            }
            Endpoint::Conference => !m.unsubscribed.contains(&track) && !m.paused.contains(&track),
            // A link receives what the node at its other end says it needs.
            Endpoint::Cascade | Endpoint::Parent => m.wants.contains(&track),
            Endpoint::Whip => false,
        }
    }

    /// Tell each link (a child's, or the stand-in for the parent) which of the tracks that came
    /// over it someone here receives, when that changes: the node at the other end pauses the
    /// rest (subscriptions propagate along the tree both ways, so a track crosses a link only
    /// while someone beyond it watches).
    pub(super) fn update_demand(&mut self) {
        let links: Vec<MemberId> =
            self.members.iter().filter(|(_, m)| m.endpoint.is_link()).map(|(id, _)| *id).collect();
        for link in links {
            let mut labels: Vec<String> = self
                .track_order
                .iter()
                .filter(|t| self.tracks[t].owner == link)
                .filter(|t| self.members.iter().any(|(id, m)| self.receives(*id, m, **t)))
                .map(|t| self.tracks[t].label.clone())
                .collect();
            labels.sort();
            let m = self.members.get_mut(&link).expect("listed above");
            if m.demand_sent.as_ref() != Some(&labels) {
                m.demand_sent = Some(labels.clone());
                self.send_to(link, ServerMessage::CascadeWanted { tracks: labels });
            }
        }
    }
}

/// The node at the other end of a link says which of this room's tracks it needs (by our track
/// ids, `t17`): the link's `member` receives those and has the rest paused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkWants {
    pub member: MemberId,
    pub tracks: Vec<String>,
}

impl Handler<LinkWants> for Room {
    type Result = ();
    fn handle(&mut self, msg: LinkWants, _: &mut Context<Self>) {
        let wants: HashSet<TrackId> = msg.tracks.iter().filter_map(|t| parse_id(t, 't')).collect();
        let Some(m) = self.members.get_mut(&msg.member).filter(|m| m.endpoint.is_link()) else {
            return;
        };
        let before = std::mem::replace(&mut m.wants, wants.clone());
        let Some(peer) = m.subscribe else {
            self.update_demand();
            return;
        };
        for t in before.symmetric_difference(&wants) {
            if self.tracks.get(t).is_some_and(|rt| rt.owner != msg.member) {
                let constraint = sfu::LayerConstraint { paused: !wants.contains(t), ..Default::default() };
                self.command(WorkerCommand::SetConstraint { subscriber: peer, track: *t, constraint });
            }
        }
        // What the other end needs from here, this room needs from its other links.
        self.update_demand();
    }
}

/// The node at the other end of a link names the venue behind each track it sends (by its
/// label): every node then shows a venue by name however many links away it is published.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkSources {
    pub member: MemberId,
    pub sources: Vec<LabelledSource>,
}

/// Bounds on what a link may say (it is another node, but its word is still input).
const MAX_SOURCES: usize = 4096;
const MAX_NAME: usize = 256;

impl Handler<LinkSources> for Room {
    type Result = ();
    fn handle(&mut self, msg: LinkSources, _: &mut Context<Self>) {
        let Some(m) = self.members.get_mut(&msg.member).filter(|m| m.endpoint.is_link()) else { return };
        if msg.sources.len() > MAX_SOURCES {
            tracing::warn!(room = %self.id, count = msg.sources.len(), "cascade: too many track sources, ignored");
            return;
        }
        let sources: HashMap<String, TrackSource> = msg
            .sources
            .into_iter()
            .filter(|s| s.label.len() <= MAX_NAME && s.node.len() <= MAX_NAME && s.participant.len() <= MAX_NAME)
            .map(|s| (s.label, TrackSource { node: s.node, participant: s.participant }))
            .collect();
        let before = std::mem::replace(&mut m.sources, sources);
        // Tracks already announced without (or with another) source are announced again.
        let changed: Vec<(TrackId, TrackSource)> = self
            .track_order
            .iter()
            .filter(|t| self.tracks[t].owner == msg.member)
            .filter_map(|t| {
                let label = &self.tracks[t].label;
                let now = self.members[&msg.member].sources.get(label)?;
                (before.get(label) != Some(now)).then(|| (*t, now.clone()))
            })
            .collect();
        for (t, source) in changed {
            let msg = ServerMessage::TrackSource {
                track_id: track_id(t),
                participant_id: participant_id(msg.member),
                source,
            };
            self.broadcast(msg, None);
        }
    }
}

/// A command from a higher level of a cascaded conference (engine::cascade), already
/// authorised there: it applies whatever the local members' roles are.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CascadeControl {
    pub action: crate::cascade::ControlAction,
    /// user@node, shown to the participants.
    pub by: String,
}

impl Handler<CascadeControl> for Room {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: CascadeControl, ctx: &mut Context<Self>) -> Self::Result {
        use crate::cascade::ControlAction as A;
        let by = msg.by;
        match msg.action {
            A::Mute { participant, kind, muted } => {
                let targets: Vec<MemberId> = match participant {
                    None => self.members.iter().filter(|(_, m)| !m.endpoint.is_link()).map(|(id, _)| *id).collect(),
                    Some(p) => {
                        let found = parse_id(&p, 'p')
                            .filter(|id| self.members.contains_key(id))
                            .or_else(|| self.members.iter().find(|(_, m)| m.name == p).map(|(id, _)| *id));
                        vec![found.ok_or_else(|| format!("no participant {p} here"))?]
                    }
                };
                for member in targets {
                    self.send_to(member, ServerMessage::MuteRequested { kind, muted, by: by.clone() });
                    <Self as Handler<Mute>>::handle(self, Mute { member, kind, muted }, ctx);
                }
            }
            A::RollCall { venue } => self.broadcast(ServerMessage::RollCall { venue, by }, None),
            A::Lock { venue } => {
                self.locked_view = Some((venue.clone(), by.clone()));
                self.broadcast(ServerMessage::ViewLocked { venue, by }, None);
            }
            A::Unlock {} => {
                self.locked_view = None;
                self.broadcast(ServerMessage::ViewUnlocked { by }, None);
            }
            A::Layout { layout } => self.broadcast(ServerMessage::Layout { layout, by }, None),
            A::End {} => {
                <Self as Handler<CloseRoom>>::handle(self, CloseRoom { reason: format!("ended by {by}") }, ctx);
            }
        }
        Ok(())
    }
}
