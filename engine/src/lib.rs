//! yunshi's control plane: actix actors for the node, its rooms and their devices, plus the
//! persistent store. Actors carry control only; media never passes through them.

pub mod cascade;
pub mod device;
pub mod node;
pub mod password;
pub mod protocol;
pub mod room;
pub mod store;

pub use cascade::{Cascade, CascadeConfig};
pub use device::Device;
pub use node::{MediaConfig, Node};
pub use room::Room;
pub use store::{SledStore, Store};
