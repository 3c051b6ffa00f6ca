//! The `Cascade` actor: owns this node's `CascadeTree`, is told by the link endpoint what its
//! children say and by the uplink thread how the parent link fares, ticks the clock, and
//! sends the subtree up whenever it changes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::{mpsc::UnboundedSender, oneshot};
use tracing::{info, warn};

use crate::cascade::command::{ControlAction, NodeResult, Route};
use crate::cascade::media::ParentRooms;
use crate::cascade::protocol::{LinkMessage, NodeView};
use crate::cascade::tree::{CascadeTree, CascadeView, Change, ConnectionId};
use crate::cascade::uplink::{self, Outgoing, UplinkConfig, UplinkEvent};
use crate::cascade::{token, valid_node_name};
use crate::node::{Node, OpenRoom, SetParentRooms};
use crate::room::CascadeControl;

/// How long a hop waits for a child's acknowledgement (the child waits for its own children
/// no longer than this either, so a deep tree answers in about this time at worst).
pub const ACK_WITHIN: Duration = Duration::from_secs(3);

type Results = Pin<Box<dyn Future<Output = Vec<NodeResult>>>>;

/// How often silent links are looked for (well inside `health::DOWN_AFTER`).
const TICK: Duration = Duration::from_millis(200);

#[derive(Clone, Debug, Default)]
pub struct CascadeConfig {
    /// This node's name in the tree.
    pub node: String,
    /// The parent's API address (`http://host:port`), if this node has one.
    pub parent_url: Option<String>,
    /// Secret presented to the parent.
    pub parent_secret: Option<Vec<u8>>,
    /// Secret children must present; without one, no child is accepted.
    pub children_secret: Option<Vec<u8>>,
}

impl CascadeConfig {
    pub fn check(&self) -> Result<(), String> {
        if !valid_node_name(&self.node) {
            return Err(format!("node name {:?}: 1-64 of A-Z a-z 0-9 - _ .", self.node));
        }
        if let Some(url) = &self.parent_url {
            uplink::link_url(url, "")?;
            if self.parent_secret.as_ref().is_none_or(|s| s.is_empty()) {
                return Err("a cascade parent needs a secret (cascade_parent_secret or cascade_secret)".into());
            }
        }
        Ok(())
    }
}

pub struct Cascade {
    cfg: CascadeConfig,
    tree: CascadeTree,
    /// Rooms here, for commands from above.
    node: Addr<Node>,
    /// To the uplink thread: the subtree whenever it changes, and acknowledgements. Dropping
    /// it ends the thread.
    uplink_tx: Option<mpsc::Sender<Outgoing>>,
    /// Which uplink thread is the current one: a replaced one's last news is ignored.
    uplink_generation: u64,
    last_sent: Option<Vec<NodeView>>,
    /// Each child's live connection and the way down it.
    links: HashMap<String, (ConnectionId, UnboundedSender<LinkMessage>)>,
    /// Commands sent down and waiting for their acknowledgement, by id.
    pending: HashMap<u64, oneshot::Sender<Vec<NodeResult>>>,
    next_command: u64,
}

impl Cascade {
    pub fn new(cfg: CascadeConfig, node: Addr<Node>) -> Self {
        let tree = CascadeTree::new(cfg.node.clone(), cfg.parent_url.clone());
        Self {
            cfg,
            tree,
            node,
            uplink_tx: None,
            uplink_generation: 0,
            last_sent: None,
            links: HashMap::new(),
            pending: HashMap::new(),
            next_command: 1,
        }
    }

    /// Start a command on its way: applied here and/or sent down; the future gathers every
    /// node's answer. Refused at once if the target is not here nor below.
    fn execute(&mut self, target: String, room: String, action: ControlAction, by: String) -> Result<Results, String> {
        let (here, via) = match self.tree.route(&target) {
            Route::Here => (true, vec![]),
            Route::Everywhere => (true, self.tree.up_children()),
            Route::Through(child) => (false, vec![child]),
            Route::NotBelow => {
                return Err(format!(
                    "{target} is not {} nor below it: commands travel downwards only",
                    self.tree.name()
                ))
            }
        };
        let mut parts: Vec<Results> = Vec::new();
        if here {
            parts.push(Box::pin(apply_here(
                self.node.clone(),
                self.tree.name().to_string(),
                room.clone(),
                action.clone(),
                by.clone(),
            )));
        }
        for child in via {
            let link = self.tree.connection_of(&child).and_then(|c| self.links.get(&child).filter(|(l, _)| *l == c));
            let Some((_, down)) = link else {
                parts.push(Box::pin(std::future::ready(vec![NodeResult::failed(&child, "link down")])));
                continue;
            };
            let id = self.next_command;
            self.next_command += 1;
            let (tx, rx) = oneshot::channel();
            let command = LinkMessage::Command {
                id,
                target: target.clone(),
                room: room.clone(),
                action: action.clone(),
                by: by.clone(),
            };
            if down.send(command).is_err() {
                parts.push(Box::pin(std::future::ready(vec![NodeResult::failed(&child, "link down")])));
                continue;
            }
            self.pending.insert(id, tx);
            parts.push(Box::pin(async move {
                match tokio::time::timeout(ACK_WITHIN, rx).await {
                    Ok(Ok(results)) => results,
                    _ => vec![NodeResult::failed(&child, "no acknowledgement within 3 s")],
                }
            }));
        }
        // Everything is already sent: awaiting the answers in turn takes as long as the slowest.
        Ok(Box::pin(async move {
            let mut all = Vec::new();
            for p in parts {
                all.extend(p.await);
            }
            all
        }))
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::ChildUp(n) => info!(child = %n, "cascade link up"),
                Change::ChildDown(n) => warn!(child = %n, "cascade link down"),
            }
        }
        self.report_up();
    }

    /// Send the subtree to the uplink if it differs from what was sent last.
    fn report_up(&mut self) {
        let Some(tx) = &self.uplink_tx else { return };
        let digest = self.tree.children_digest();
        if self.last_sent.as_ref() != Some(&digest) {
            let _ = tx.send(Outgoing::Subtree(digest.clone()));
            self.last_sent = Some(digest);
        }
    }
}

async fn apply_here(node: Addr<Node>, me: String, room: String, action: ControlAction, by: String) -> Vec<NodeResult> {
    let result = match node.send(OpenRoom { id: room.clone() }).await {
        Ok(Some(addr)) => match addr.send(CascadeControl { action, by }).await {
            Ok(Ok(())) => NodeResult::ok(&me),
            Ok(Err(e)) => NodeResult::failed(&me, e),
            Err(_) => NodeResult::failed(&me, "the room closed"),
        },
        Ok(None) => NodeResult::failed(&me, format!("no room {room} here")),
        Err(_) => NodeResult::failed(&me, "node stopped"),
    };
    vec![result]
}

impl Actor for Cascade {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |me, _| {
            let changes = me.tree.tick(Instant::now());
            me.apply(changes);
            // Commands whose waiter gave up (no acknowledgement in time).
            me.pending.retain(|_, tx| !tx.is_closed());
        });
        self.dial(ctx);
    }
}

impl Cascade {
    /// Keep a link up to the configured parent (a thread of its own), ending any earlier one.
    fn dial(&mut self, ctx: &mut Context<Self>) {
        self.uplink_tx = None;
        self.uplink_generation += 1;
        self.last_sent = None;
        let (Some(url), Some(secret)) = (self.cfg.parent_url.clone(), self.cfg.parent_secret.clone()) else {
            return;
        };
        let (tx, rx) = mpsc::channel();
        let me = ctx.address();
        let generation = self.uplink_generation;
        let cfg = UplinkConfig { node: self.cfg.node.clone(), parent_url: url.clone(), secret };
        match uplink::spawn(cfg, move |ev| me.do_send(Uplink(generation, ev)), rx) {
            Ok(_) => {
                info!(parent = %url, "cascade: dialling the parent");
                self.uplink_tx = Some(tx);
                self.report_up();
            }
            Err(e) => warn!("cascade uplink thread: {e}"),
        }
    }
}

/// A new parent for this node, or none (`PUT`/`DELETE /api/v1/cascade/parent`): checked like
/// the configuration; the link and every room's link move to it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SetParent {
    pub url: Option<String>,
    pub secret: Option<Vec<u8>>,
}

impl Handler<SetParent> for Cascade {
    type Result = Result<(), String>;
    fn handle(&mut self, m: SetParent, ctx: &mut Self::Context) -> Self::Result {
        let cfg = CascadeConfig { parent_url: m.url, parent_secret: m.secret, ..self.cfg.clone() };
        cfg.check()?;
        info!(parent = ?cfg.parent_url, "cascade: parent set");
        self.tree.set_parent(cfg.parent_url.clone());
        self.cfg = cfg;
        self.dial(ctx);
        let rooms = match (&self.cfg.parent_url, &self.cfg.parent_secret) {
            (Some(url), Some(secret)) => {
                Some(ParentRooms { node: self.cfg.node.clone(), parent_url: url.clone(), secret: secret.clone() })
            }
            _ => None,
        };
        self.node.do_send(SetParentRooms(rooms));
        Ok(())
    }
}

/// News from an uplink thread (of the given generation).
#[derive(Message)]
#[rtype(result = "()")]
struct Uplink(u64, UplinkEvent);

impl Handler<Uplink> for Cascade {
    type Result = ();
    fn handle(&mut self, Uplink(generation, ev): Uplink, ctx: &mut Self::Context) {
        if generation != self.uplink_generation {
            return;
        }
        let now = Instant::now();
        match ev {
            UplinkEvent::Welcomed { parent } => {
                info!(parent = %parent, "cascade: link to the parent up");
                self.tree.parent_welcomed(parent, now);
                // A new connection starts from nothing at the parent: report in full.
                self.last_sent = None;
                self.report_up();
            }
            UplinkEvent::Heard { rtt } => self.tree.parent_heard(rtt, now),
            UplinkEvent::Lost { reason } => {
                if self.tree.parent_lost() {
                    warn!(%reason, "cascade: link to the parent down");
                }
            }
            UplinkEvent::Command { id, target, room, action, by } => {
                self.tree.parent_heard(None, now);
                info!(%target, %room, ?action, %by, "cascade: command from above");
                let me = self.tree.name().to_string();
                let work = self.execute(target, room, action, by);
                let up = self.uplink_tx.clone();
                ctx.spawn(
                    async move {
                        let results = match work {
                            Ok(w) => w.await,
                            Err(e) => vec![NodeResult::failed(&me, e)],
                        };
                        if let Some(up) = up {
                            let _ = up.send(Outgoing::Message(LinkMessage::Ack { id, results }));
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

/// Run a command from this node's API: here and/or below, never above.
#[derive(Message)]
#[rtype(result = "Result<Vec<NodeResult>, String>")]
pub struct Execute {
    pub target: String,
    pub room: String,
    pub action: ControlAction,
    /// user@node.
    pub by: String,
}

impl Handler<Execute> for Cascade {
    type Result = ResponseFuture<Result<Vec<NodeResult>, String>>;
    fn handle(&mut self, m: Execute, _: &mut Self::Context) -> Self::Result {
        match self.execute(m.target, m.room, m.action, m.by) {
            Ok(work) => Box::pin(async move { Ok(work.await) }),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

#[derive(Message)]
#[rtype(result = "String")]
pub struct NodeName;

impl Handler<NodeName> for Cascade {
    type Result = String;
    fn handle(&mut self, _: NodeName, _: &mut Self::Context) -> String {
        self.tree.name().to_string()
    }
}

/// May a child holding `token` join? Replies with its node name.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct AuthorizeChild {
    pub token: String,
}

impl Handler<AuthorizeChild> for Cascade {
    type Result = Result<String, String>;
    fn handle(&mut self, m: AuthorizeChild, _: &mut Self::Context) -> Self::Result {
        let Some(secret) = &self.cfg.children_secret else {
            return Err("this node accepts no cascade children (no cascade_secret set)".into());
        };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        token::verify(secret, &m.token, now).map_err(str::to_string)
    }
}

/// A child said hello on `connection`; replies with this node's name for the welcome.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct ChildHello {
    pub node: String,
    pub connection: ConnectionId,
    /// Messages for the child (commands from above) go here.
    pub down: UnboundedSender<LinkMessage>,
}

impl Handler<ChildHello> for Cascade {
    type Result = Result<String, String>;
    fn handle(&mut self, m: ChildHello, _: &mut Self::Context) -> Self::Result {
        let changes = self.tree.child_connected(&m.node, m.connection, Instant::now())?;
        self.links.insert(m.node.clone(), (m.connection, m.down));
        self.apply(changes);
        Ok(self.tree.name().to_string())
    }
}

/// A message from a child after its hello.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChildSaid {
    pub node: String,
    pub connection: ConnectionId,
    pub message: LinkMessage,
}

impl Handler<ChildSaid> for Cascade {
    type Result = ();
    fn handle(&mut self, m: ChildSaid, _: &mut Self::Context) {
        let now = Instant::now();
        let changes = match m.message {
            LinkMessage::Ping { rtt_ms, .. } => self.tree.child_heard(&m.node, m.connection, rtt_ms, now),
            LinkMessage::Subtree { children } => self.tree.child_subtree(&m.node, m.connection, children, now),
            LinkMessage::Ack { id, results } => {
                if let Some(waiter) = self.pending.remove(&id) {
                    let _ = waiter.send(results);
                }
                self.tree.child_heard(&m.node, m.connection, None, now)
            }
            _ => self.tree.child_heard(&m.node, m.connection, None, now),
        };
        self.apply(changes);
    }
}

/// The child's connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChildClosed {
    pub node: String,
    pub connection: ConnectionId,
}

impl Handler<ChildClosed> for Cascade {
    type Result = ();
    fn handle(&mut self, m: ChildClosed, _: &mut Self::Context) {
        let changes = self.tree.child_gone(&m.node, m.connection);
        if self.links.get(&m.node).is_some_and(|(c, _)| *c == m.connection) {
            self.links.remove(&m.node);
        }
        self.apply(changes);
    }
}

/// Is this still the child's live connection? (A replaced one closes itself.)
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsCurrent {
    pub node: String,
    pub connection: ConnectionId,
}

impl Handler<IsCurrent> for Cascade {
    type Result = bool;
    fn handle(&mut self, m: IsCurrent, _: &mut Self::Context) -> bool {
        self.tree.is_current(&m.node, m.connection)
    }
}

#[derive(Message)]
#[rtype(result = "CascadeView")]
pub struct GetView;

impl Handler<GetView> for Cascade {
    type Result = MessageResult<GetView>;
    fn handle(&mut self, _: GetView, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.tree.view(Instant::now()))
    }
}
