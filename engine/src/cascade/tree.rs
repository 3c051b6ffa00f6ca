//! The cascade as one node sees it: its link to its parent and the subtree below it, sans-IO.
//!
//! Each child link is identified by the connection it arrived on: a child that dials again
//! while its old connection still looks alive replaces it, and late news from the old one is
//! ignored (no ghost children, no flapping).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::cascade::command::{Route, EVERYWHERE};
use crate::cascade::health::{LinkHealth, LinkState};
use crate::cascade::protocol::NodeView;

/// What `GET /api/v1/cascade` returns.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct CascadeView {
    pub node: String,
    /// The link up to the parent, if this node has one.
    pub parent: Option<ParentView>,
    pub children: Vec<NodeView>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ParentView {
    pub url: String,
    /// The parent's name once it has welcomed us.
    pub node: Option<String>,
    pub state: LinkState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard_ms_ago: Option<u64>,
}

/// Connection ids are handed out by the caller (the link endpoint), unique per process.
pub type ConnectionId = u64;

struct ChildLink {
    connection: Option<ConnectionId>,
    health: LinkHealth,
    subtree: Vec<NodeView>,
}

struct ParentLink {
    url: String,
    node: Option<String>,
    health: LinkHealth,
}

/// What changed, for the caller to log, audit and pass upwards.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    ChildUp(String),
    ChildDown(String),
}

pub struct CascadeTree {
    name: String,
    parent: Option<ParentLink>,
    children: BTreeMap<String, ChildLink>,
}

impl CascadeTree {
    pub fn new(name: String, parent_url: Option<String>) -> Self {
        let parent = parent_url.map(|url| ParentLink { url, node: None, health: LinkHealth::default() });
        Self { name, parent, children: BTreeMap::new() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another parent (or none): its link starts from nothing.
    pub fn set_parent(&mut self, parent_url: Option<String>) {
        self.parent = parent_url.map(|url| ParentLink { url, node: None, health: LinkHealth::default() });
    }

    /// A child completed its hello on `connection`. Refused if it claims this node's name.
    pub fn child_connected(
        &mut self,
        node: &str,
        connection: ConnectionId,
        now: Instant,
    ) -> Result<Vec<Change>, String> {
        if node == self.name {
            return Err(format!("a child cannot be named like its parent ({node})"));
        }
        let link = self.children.entry(node.to_string()).or_insert_with(|| ChildLink {
            connection: None,
            health: LinkHealth::default(),
            subtree: Vec::new(),
        });
        link.connection = Some(connection);
        link.subtree.clear();
        Ok(if link.health.heard(now) { vec![Change::ChildUp(node.to_string())] } else { vec![] })
    }

    fn current(&mut self, node: &str, connection: ConnectionId) -> Option<&mut ChildLink> {
        self.children.get_mut(node).filter(|l| l.connection == Some(connection))
    }

    /// Anything arrived from a child (a ping carries the child's own RTT figure).
    pub fn child_heard(
        &mut self,
        node: &str,
        connection: ConnectionId,
        rtt_ms: Option<f64>,
        now: Instant,
    ) -> Vec<Change> {
        let Some(link) = self.current(node, connection) else { return vec![] };
        if let Some(ms) = rtt_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
            link.health.set_rtt(std::time::Duration::from_secs_f64(ms / 1000.0));
        }
        if link.health.heard(now) {
            vec![Change::ChildUp(node.to_string())]
        } else {
            vec![]
        }
    }

    pub fn child_subtree(
        &mut self,
        node: &str,
        connection: ConnectionId,
        children: Vec<NodeView>,
        now: Instant,
    ) -> Vec<Change> {
        let changes = self.child_heard(node, connection, None, now);
        if let Some(link) = self.current(node, connection) {
            link.subtree = children;
        }
        changes
    }

    /// The child's connection closed. News about a replaced connection is ignored.
    pub fn child_gone(&mut self, node: &str, connection: ConnectionId) -> Vec<Change> {
        let Some(link) = self.current(node, connection) else { return vec![] };
        link.connection = None;
        link.subtree.clear();
        if link.health.lost() {
            vec![Change::ChildDown(node.to_string())]
        } else {
            vec![]
        }
    }

    /// Time passes: silent child links go down (their connection is then stale).
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (name, link) in &mut self.children {
            if link.health.tick(now) {
                link.connection = None;
                link.subtree.clear();
                changes.push(Change::ChildDown(name.clone()));
            }
        }
        if let Some(p) = &mut self.parent {
            p.health.tick(now);
        }
        changes
    }

    /// Where a command for `target` goes from here.
    pub fn route(&self, target: &str) -> Route {
        if target == EVERYWHERE {
            return Route::Everywhere;
        }
        if target == self.name {
            return Route::Here;
        }
        fn holds(v: &[NodeView], target: &str) -> bool {
            v.iter().any(|n| n.node == target || holds(&n.children, target))
        }
        for (name, link) in &self.children {
            if name == target || holds(&link.subtree, target) {
                return Route::Through(name.clone());
            }
        }
        Route::NotBelow
    }

    /// Children whose link is up now (a command for everyone goes to these).
    pub fn up_children(&self) -> Vec<String> {
        self.children.iter().filter(|(_, l)| l.health.state() == LinkState::Up).map(|(n, _)| n.clone()).collect()
    }

    /// The live connection of a child, if its link is up.
    pub fn connection_of(&self, node: &str) -> Option<ConnectionId> {
        self.children.get(node).filter(|l| l.health.state() == LinkState::Up).and_then(|l| l.connection)
    }

    /// Is `connection` still the live one for `node`? (The link endpoint closes stale ones.)
    pub fn is_current(&self, node: &str, connection: ConnectionId) -> bool {
        self.children.get(node).is_some_and(|l| l.connection == Some(connection))
    }

    pub fn parent_welcomed(&mut self, parent_node: String, now: Instant) {
        if let Some(p) = &mut self.parent {
            p.node = Some(parent_node);
            p.health.heard(now);
        }
    }

    pub fn parent_heard(&mut self, rtt: Option<std::time::Duration>, now: Instant) {
        if let Some(p) = &mut self.parent {
            if let Some(rtt) = rtt {
                p.health.set_rtt(rtt);
            }
            p.health.heard(now);
        }
    }

    pub fn parent_lost(&mut self) -> bool {
        self.parent.as_mut().is_some_and(|p| p.health.lost())
    }

    /// The nodes below this one, as sent up to the parent and shown by the API.
    pub fn children_view(&self, now: Instant) -> Vec<NodeView> {
        self.children
            .iter()
            .map(|(name, link)| NodeView {
                node: name.clone(),
                state: link.health.state(),
                rtt_ms: link.health.rtt().map(|d| d.as_secs_f64() * 1000.0),
                heard_ms_ago: link.health.heard_ago(now).map(|d| d.as_millis() as u64),
                children: link.subtree.clone(),
            })
            .collect()
    }

    /// Like `children_view` without the ever-changing figures (heard ago, RTT): what the
    /// parent needs to be told again only when it differs, that is when a link below goes up
    /// or down or a node joins. RTT is shown by the node at each end of a link.
    pub fn children_digest(&self) -> Vec<NodeView> {
        fn strip(v: &mut NodeView) {
            v.heard_ms_ago = None;
            v.rtt_ms = None;
            v.children.iter_mut().for_each(strip);
        }
        let mut v = self.children_view(Instant::now());
        v.iter_mut().for_each(strip);
        v
    }

    pub fn view(&self, now: Instant) -> CascadeView {
        CascadeView {
            node: self.name.clone(),
            parent: self.parent.as_ref().map(|p| ParentView {
                url: p.url.clone(),
                node: p.node.clone(),
                state: p.health.state(),
                rtt_ms: p.health.rtt().map(|d| d.as_secs_f64() * 1000.0),
                heard_ms_ago: p.health.heard_ago(now).map(|d| d.as_millis() as u64),
            }),
            children: self.children_view(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cascade::health::DOWN_AFTER;

    fn leaf(name: &str) -> NodeView {
        NodeView { node: name.into(), state: LinkState::Up, rtt_ms: Some(1.0), heard_ms_ago: None, children: vec![] }
    }

    #[test]
    fn a_child_reports_its_subtree_and_goes_down_when_silent() {
        let t0 = Instant::now();
        let mut t = CascadeTree::new("province".into(), None);
        assert_eq!(t.child_connected("city", 1, t0).unwrap(), vec![Change::ChildUp("city".into())]);
        t.child_subtree("city", 1, vec![leaf("county")], t0);
        let v = t.view(t0);
        assert_eq!(v.children.len(), 1);
        assert_eq!(v.children[0].children[0].node, "county");
        assert_eq!(t.tick(t0 + DOWN_AFTER - Duration::from_millis(1)), vec![]);
        assert_eq!(t.tick(t0 + DOWN_AFTER), vec![Change::ChildDown("city".into())]);
        let v = t.view(t0 + DOWN_AFTER);
        assert_eq!(v.children[0].state, LinkState::Down);
        assert!(v.children[0].children.is_empty(), "nodes behind a down link are not shown as reachable");
    }

    #[test]
    fn a_reconnect_replaces_the_old_connection() {
        let t0 = Instant::now();
        let mut t = CascadeTree::new("city".into(), Some("http://p".into()));
        t.child_connected("county", 1, t0).unwrap();
        assert_eq!(t.child_connected("county", 2, t0 + Duration::from_millis(10)).unwrap(), vec![]);
        // The old connection's close arrives late: the child stays up on the new one.
        assert_eq!(t.child_gone("county", 1), vec![]);
        assert!(t.is_current("county", 2));
        assert_eq!(t.view(t0).children[0].state, LinkState::Up);
        assert_eq!(t.child_gone("county", 2), vec![Change::ChildDown("county".into())]);
        assert_eq!(
            t.child_connected("county", 3, t0 + Duration::from_secs(5)).unwrap(),
            vec![Change::ChildUp("county".into())]
        );
    }

    #[test]
    fn commands_route_down_only() {
        let t0 = Instant::now();
        let mut t = CascadeTree::new("city".into(), Some("http://province".into()));
        t.child_connected("county-1", 1, t0).unwrap();
        t.child_connected("county-2", 2, t0).unwrap();
        t.child_subtree("county-2", 2, vec![leaf("township-9")], t0);
        assert_eq!(t.route("city"), Route::Here);
        assert_eq!(t.route("*"), Route::Everywhere);
        assert_eq!(t.route("county-1"), Route::Through("county-1".into()));
        assert_eq!(t.route("township-9"), Route::Through("county-2".into()));
        assert_eq!(t.route("province"), Route::NotBelow, "never upwards");
        assert_eq!(t.route("county-7"), Route::NotBelow);
        t.child_gone("county-1", 1);
        assert_eq!(t.up_children(), vec!["county-2".to_string()]);
        assert_eq!(t.connection_of("county-1"), None);
        assert_eq!(t.connection_of("county-2"), Some(2));
    }

    #[test]
    fn a_child_may_not_take_its_parents_name() {
        let mut t = CascadeTree::new("city".into(), None);
        assert!(t.child_connected("city", 1, Instant::now()).is_err());
        assert!(t.view(Instant::now()).children.is_empty());
    }

    #[test]
    fn the_parent_link_is_shown_with_its_health() {
        let t0 = Instant::now();
        let mut t = CascadeTree::new("county".into(), Some("http://city:8080".into()));
        assert_eq!(t.view(t0).parent.unwrap().state, LinkState::Connecting);
        t.parent_welcomed("city".into(), t0);
        t.parent_heard(Some(Duration::from_millis(2)), t0);
        let p = t.view(t0).parent.unwrap();
        assert_eq!((p.state, p.node.as_deref(), p.rtt_ms), (LinkState::Up, Some("city"), Some(2.0)));
        assert!(t.parent_lost());
        assert_eq!(t.view(t0).parent.unwrap().state, LinkState::Down);
    }
}
