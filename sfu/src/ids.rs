//! Identifiers shared between the media plane and the control plane.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One str0m peer connection on a worker.
pub type PeerId = u64;
/// One published track (a publisher's m-line), unique in the process.
pub type TrackId = u64;
/// A room's id as the API names it.
pub type RoomId = Arc<str>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Process-wide unique id for peers and tracks.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}
