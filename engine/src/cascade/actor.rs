//! The `Cascade` actor: owns this node's `CascadeTree`, is told by the link endpoint what its
//! children say and by the uplink thread how the parent link fares, ticks the clock, and
//! sends the subtree up whenever it changes.

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tracing::{info, warn};

use crate::cascade::protocol::{LinkMessage, NodeView};
use crate::cascade::tree::{CascadeTree, CascadeView, Change, ConnectionId};
use crate::cascade::uplink::{self, UplinkConfig, UplinkEvent};
use crate::cascade::{token, valid_node_name};

/// How often silent links are looked for (well inside `health::DOWN_AFTER`).
const TICK: Duration = Duration::from_millis(250);

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
    /// To the uplink thread: the subtree whenever it changes.
    subtree_tx: Option<mpsc::Sender<Vec<NodeView>>>,
    last_sent: Option<Vec<NodeView>>,
}

impl Cascade {
    pub fn new(cfg: CascadeConfig) -> Self {
        let tree = CascadeTree::new(cfg.node.clone(), cfg.parent_url.clone());
        Self { cfg, tree, subtree_tx: None, last_sent: None }
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
        let Some(tx) = &self.subtree_tx else { return };
        let digest = self.tree.children_digest();
        if self.last_sent.as_ref() != Some(&digest) {
            let _ = tx.send(digest.clone());
            self.last_sent = Some(digest);
        }
    }
}

impl Actor for Cascade {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |me, _| {
            let changes = me.tree.tick(Instant::now());
            me.apply(changes);
        });
        let (Some(url), Some(secret)) = (self.cfg.parent_url.clone(), self.cfg.parent_secret.clone()) else {
            return;
        };
        let (tx, rx) = mpsc::channel();
        let me = ctx.address();
        let cfg = UplinkConfig { node: self.cfg.node.clone(), parent_url: url.clone(), secret };
        match uplink::spawn(cfg, move |ev| me.do_send(Uplink(ev)), rx) {
            Ok(_) => {
                info!(parent = %url, "cascade: dialling the parent");
                self.subtree_tx = Some(tx);
                self.report_up();
            }
            Err(e) => warn!("cascade uplink thread: {e}"),
        }
    }
}

/// News from the uplink thread.
#[derive(Message)]
#[rtype(result = "()")]
struct Uplink(UplinkEvent);

impl Handler<Uplink> for Cascade {
    type Result = ();
    fn handle(&mut self, Uplink(ev): Uplink, _: &mut Self::Context) {
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
        }
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
}

impl Handler<ChildHello> for Cascade {
    type Result = Result<String, String>;
    fn handle(&mut self, m: ChildHello, _: &mut Self::Context) -> Self::Result {
        let changes = self.tree.child_connected(&m.node, m.connection, Instant::now())?;
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
