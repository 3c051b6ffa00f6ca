//! The typed schema between the control plane (engine actors) and a media worker. Commands go
//! in over a channel; events come out through a sink. Nothing here is per packet.

use tokio::sync::oneshot;

use crate::forward::TrackKind;
use crate::ids::{PeerId, RoomId, TrackId};

/// What a peer connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// A browser's publish connection: the client offers its tracks.
    Publish,
    /// A browser's subscribe connection: the server offers one m-line per forwarded track.
    Subscribe,
    /// A WHIP ingest: publish only, the client offers once.
    Whip,
    /// A WHEP viewer: fixed m-lines (one audio, one video) whose source the server switches.
    Whep,
}

impl PeerKind {
    pub fn publishes(self) -> bool {
        matches!(self, PeerKind::Publish | PeerKind::Whip)
    }
}

/// Where a peer connection sits: a client's, or one end of a cascade link between two nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerPlace {
    /// A browser, camera or tool that connects to this node (which is ICE lite: they dial).
    #[default]
    Client,
    /// The parent end of a cascade link: a child node dials in, as a client would.
    LinkParent,
    /// The child end of a cascade link: this node dials its parent, which is lite, so this end
    /// runs full ICE from a UDP socket of its own.
    LinkChild,
}

impl PeerPlace {
    pub fn ice_lite(self) -> bool {
        self != PeerPlace::LinkChild
    }

    /// Either end of a cascade link.
    pub fn on_link(self) -> bool {
        self != PeerPlace::Client
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    #[error("SDP rejected: {0}")]
    Rejected(String),
    #[error("no such peer")]
    UnknownPeer,
    #[error("media worker is gone")]
    WorkerGone,
}

pub type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

#[derive(Debug)]
pub enum WorkerCommand {
    /// Create a peer. Publish/Whip/Whep need the remote `offer` and reply with the answer;
    /// Subscribe has no offer and replies with the server's first offer.
    CreatePeer {
        peer: PeerId,
        room: RoomId,
        kind: PeerKind,
        offer: Option<String>,
        place: PeerPlace,
        reply: Reply<String>,
    },
    /// A renegotiation offer on a publish connection; replies with the answer.
    RemoteOffer {
        peer: PeerId,
        sdp: String,
        reply: Reply<String>,
    },
    /// The client's answer to our last subscribe offer.
    RemoteAnswer {
        peer: PeerId,
        sdp: String,
        reply: Reply<()>,
    },
    /// Forward `track` to `subscriber`. `stream_id` becomes the msid stream (the publishing
    /// participant), so the browser can tell whose track it is.
    Subscribe {
        subscriber: PeerId,
        track: TrackId,
        stream_id: String,
    },
    Unsubscribe {
        subscriber: PeerId,
        track: TrackId,
    },
    SetMuted {
        track: TrackId,
        muted: bool,
    },
    /// A cascade link's far end needs only these RIDs of the simulcast track it receives on
    /// m-line `mid` (its own dynacast, passed back over the link): the others stay here.
    SetLinkLayers {
        subscriber: PeerId,
        mid: String,
        active: Vec<String>,
    },
    /// A subscriber's wishes for one track it receives.
    SetConstraint {
        subscriber: PeerId,
        track: TrackId,
        constraint: LayerConstraint,
    },
    ClosePeer {
        peer: PeerId,
    },
}

/// What a subscriber wants of one track: a tile's size, a frame-rate cap, or nothing (hidden).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerConstraint {
    pub max_height: Option<u16>,
    /// Highest temporal layer (0 = base frame rate only).
    pub max_temporal: Option<u8>,
    pub paused: bool,
}

#[derive(Debug, Clone)]
pub enum WorkerEvent {
    PeerConnected {
        room: RoomId,
        peer: PeerId,
    },
    /// The peer is gone (ICE lost, DTLS closed, or closed by command). Its tracks are ended.
    PeerClosed {
        room: RoomId,
        peer: PeerId,
    },
    TrackPublished {
        room: RoomId,
        peer: PeerId,
        track: TrackId,
        kind: TrackKind,
        /// The publisher's own name for it (the msid track id of its offer): a child node's
        /// link names each track after its id there, so the parent can say which it needs.
        label: String,
    },
    TrackEnded {
        room: RoomId,
        peer: PeerId,
        track: TrackId,
    },
    /// The room's active speaker changed to the publisher of this audio track.
    ActiveSpeaker {
        room: RoomId,
        track: TrackId,
    },
    /// The publisher should keep only these simulcast encodings (RIDs) of its m-line `mid` on:
    /// nobody receives the others (`dynacast`).
    PublishLayers {
        room: RoomId,
        peer: PeerId,
        mid: String,
        active: Vec<String>,
    },
    /// A new offer for a subscribe connection, to relay to the client.
    SubscribeOffer {
        room: RoomId,
        peer: PeerId,
        sdp: String,
    },
}

/// Where workers deliver events. The engine provides it; the worker knows no actors.
pub type EventSink = std::sync::Arc<dyn Fn(WorkerEvent) + Send + Sync>;
