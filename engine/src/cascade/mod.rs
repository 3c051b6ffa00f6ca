//! Cascading: nodes arranged in a tree (province → city → county → …). A node knows its parent
//! from the configuration or the API (`parent`, kept in the store); it keeps a control link up to it (a WebSocket it dials, with
//! heartbeats), reports the subtree below it, and shows the whole tree below itself with the
//! health of every link (`GET /api/v1/cascade`).
//!
//! The pieces, one concept each: `protocol` (the messages on a link), `command` (control
//! from above and where it goes), `token` (how a child
//! proves it may join), `health` and `tree` (sans-IO state, driven by the caller's clock),
//! `uplink` (the thread that dials the parent) and `actor` (the `Cascade` actor that owns the
//! tree and talks to both).

pub mod actor;
pub mod command;
pub mod health;
pub mod media;
pub mod parent;
pub mod protocol;
pub mod token;
pub mod tree;
pub mod uplink;

pub use actor::{Cascade, CascadeConfig};
pub use command::{ControlAction, NodeResult};
pub use health::LinkState;
pub use protocol::{LinkMessage, NodeView};
pub use tree::CascadeView;

/// A node name: 1–64 of `A-Z a-z 0-9 - _ .` (it appears in tokens, URLs and the tree).
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
