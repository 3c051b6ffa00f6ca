//! Messages on a cascade control link (JSON text frames on a WebSocket the child dials).
//!
//! ```text
//! child                                   parent
//!   ── hello {node} ──────────────────────▶   (token checked at the upgrade)
//!   ◀───────────────────── welcome {node} ──
//!   ── subtree {children} ────────────────▶   (at once, then whenever it changes)
//!   ── ping {seq, rtt_ms} ── every 0.5 s ▶
//!   ◀──────────────────────── pong {seq} ──
//!   ◀──────── command {id, target, room, action, by} ── (control from above)
//!   ── ack {id, results} ─────────────────▶
//! ```
//! Either side that hears nothing for `health::DOWN_AFTER` calls the link down and closes it;
//! the child dials again until the parent answers.

use serde::{Deserialize, Serialize};

use crate::cascade::command::{ControlAction, NodeResult};
use crate::cascade::health::LinkState;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LinkMessage {
    Hello {
        node: String,
    },
    Welcome {
        node: String,
    },
    /// The sender's view of the nodes below it (its children and theirs).
    Subtree {
        children: Vec<NodeView>,
    },
    /// `rtt_ms`: the child's last measured round trip, so the parent can show it too.
    Ping {
        seq: u64,
        rtt_ms: Option<f64>,
    },
    Pong {
        seq: u64,
    },
    /// Parent → child only: apply `action` to `room` at `target` (this child, a node below it,
    /// or `*`), on behalf of `by` (user@node). Answered with an `ack` of the same id.
    Command {
        id: u64,
        target: String,
        room: String,
        action: ControlAction,
        by: String,
    },
    /// Child → parent: the answers of every node the command reached.
    Ack {
        id: u64,
        results: Vec<NodeResult>,
    },
    Error {
        code: String,
        message: String,
    },
}

/// One node of the tree as seen from above.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node: String,
    /// Health of the link from this node to its parent.
    pub state: LinkState,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rtt_ms: Option<f64>,
    /// Milliseconds since the link last carried anything (absent if it never did).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heard_ms_ago: Option<u64>,
    /// Children as last reported over the link; empty while it is down (they are not reachable
    /// from here, whatever their own state).
    #[serde(default)]
    pub children: Vec<NodeView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_type_tag() {
        let m = LinkMessage::Ping { seq: 3, rtt_ms: Some(1.5) };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"type":"ping","seq":3,"rtt_ms":1.5}"#);
        assert_eq!(serde_json::from_str::<LinkMessage>(&s).unwrap(), m);
        assert!(serde_json::from_str::<LinkMessage>(r#"{"type":"launch"}"#).is_err());
    }
}
