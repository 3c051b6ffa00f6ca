//! Control from above: what a higher level may do to a conference's room on a node below,
//! and where a command goes. Commands travel down the tree only; each node that applies one
//! answers for itself, and every hop relays its children's answers up with its own.

use serde::{Deserialize, Serialize};

use crate::protocol::Kind;

/// What a command does to the conference's room on a node.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlAction {
    /// Mute (or release) one participant (`p3`, or a display name), or everyone in the venue.
    Mute {
        #[serde(default)]
        participant: Option<String>,
        #[serde(default = "audio")]
        kind: Kind,
        #[serde(default = "yes")]
        muted: bool,
    },
    /// Bring `venue` (a node name) to the main view for everyone.
    RollCall {
        venue: String,
    },
    /// Everyone watches `venue` and may not switch until unlocked.
    Lock {
        venue: String,
    },
    // Empty braces, not unit variants: serde's deny_unknown_fields ignores unit variants.
    Unlock {},
    /// The layout the venue's screens show (a name the clients know, e.g. "1+5", "3x3").
    Layout {
        layout: String,
    },
    /// End the conference in the venue: everyone is told and disconnected.
    End {},
}

fn audio() -> Kind {
    Kind::Audio
}

fn yes() -> bool {
    true
}

/// `"*"`: this node and every node below it.
pub const EVERYWHERE: &str = "*";

/// One node's answer to a command.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NodeResult {
    pub node: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl NodeResult {
    pub fn ok(node: &str) -> Self {
        Self { node: node.into(), ok: true, error: None }
    }
    pub fn failed(node: &str, error: impl Into<String>) -> Self {
        Self { node: node.into(), ok: false, error: Some(error.into()) }
    }
}

/// Where a command for `target` goes from this node.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Apply here only.
    Here,
    /// Apply here and send to every child (target `*`).
    Everywhere,
    /// Send down through this child (the target is it or below it).
    Through(String),
    /// The target is not this node nor below it: a command never goes up or sideways.
    NotBelow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_from_json() {
        let a: ControlAction = serde_json::from_str(r#"{"type":"mute"}"#).unwrap();
        assert_eq!(a, ControlAction::Mute { participant: None, kind: Kind::Audio, muted: true });
        let a: ControlAction = serde_json::from_str(r#"{"type":"lock","venue":"county-3"}"#).unwrap();
        assert_eq!(a, ControlAction::Lock { venue: "county-3".into() });
        assert!(serde_json::from_str::<ControlAction>(r#"{"type":"lock"}"#).is_err());
        assert!(serde_json::from_str::<ControlAction>(r#"{"type":"end","now":true}"#).is_err());
        assert!(serde_json::from_str::<ControlAction>(r#"{"type":"launch"}"#).is_err());
    }
}
