//! yunshi's media plane: str0m peers on worker threads, and the sans-IO forwarding core.
//!
//! This crate knows nothing of HTTP, actors or storage. The control plane drives it with
//! [`WorkerCommand`]s and hears back through [`WorkerEvent`]s.

pub mod allocate;
pub mod codec;
pub mod command;
mod dd_extension;
mod dtls_identity;
pub mod dynacast;
mod fast_map;
pub mod fec;
pub mod forward;
pub mod h264;
pub mod ids;
pub mod metrics;
mod peer;
pub mod red;
pub mod repair;
mod sdp_check;
mod sdp_fec;
pub mod speaker;
pub mod udp_batch;
mod worker;

pub use command::{EventSink, LayerConstraint, PeerKind, PeerPlace, SfuError, WorkerCommand, WorkerEvent};
pub use fec::VideoFec;
pub use forward::TrackKind;
pub use ids::{next_id, PeerId, RoomId, TrackId};
pub use worker::{spawn_worker, WorkerConfig, WorkerHandle};

/// Install the process-wide crypto provider str0m uses for DTLS and SRTP. Call once at start.
pub fn init_crypto() {
    str0m::crypto::from_feature_flags().install_process_default();
}
