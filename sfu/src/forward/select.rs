//! Layer selection: which packets of a video track one subscriber receives. One strategy per
//! file behind one trait, as mediasoup's consumers are: `SimulcastSelector` (separate streams,
//! also a single stream with temporal layers) and `SvcSelector` (spatial layers in one stream).
//!
//! Rules: switch up only at keyframes or temporal switching points; down at once (for SVC) or
//! at the lower stream's next keyframe (simulcast, where nothing else is decodable).

use super::layers::FrameInfo;

/// The best layer a subscriber may receive now (from its constraints and bandwidth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub spatial: u8,
    pub temporal: u8,
}

impl Target {
    pub const MAX: Target = Target { spatial: u8::MAX, temporal: u8::MAX };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward. `switched`: the output continues from another stream (renumber from here).
    /// `marker`: override the RTP marker (SVC: the end of the highest forwarded layer).
    Forward { switched: bool, marker: Option<bool> },
    /// Part of the stream being forwarded, deliberately left out: the output numbering closes
    /// the gap, and a dropped frame start shifts picture ids.
    Drop,
    /// Another simulcast stream: no effect on this subscriber's numbering.
    Ignore,
}

pub trait Selector {
    /// `want`: the stream (simulcast) or spatial layer (SVC) to aim for, already clamped to
    /// what the publisher sends.
    fn select(&mut self, info: &FrameInfo, want: Target) -> Verdict;
    /// Waiting for a keyframe to start or to switch: the caller asks the publisher for one.
    fn needs_keyframe(&self, want: Target) -> Option<u8>;
    /// The layer currently forwarded, if any.
    fn current(&self) -> Option<Target>;
    /// Forget the current layer: the next forwarded packet must be a keyframe (after a pause).
    fn reset(&mut self);
}

#[path = "simulcast.rs"]
mod simulcast;
#[path = "svc.rs"]
mod svc;

pub use simulcast::SimulcastSelector;
pub use svc::SvcSelector;

/// Enum dispatch: no allocation per subscription, no virtual call per packet.
#[derive(Debug, Clone)]
pub enum Strategy {
    Simulcast(SimulcastSelector),
    Svc(SvcSelector),
}

impl Selector for Strategy {
    fn select(&mut self, info: &FrameInfo, want: Target) -> Verdict {
        match self {
            Strategy::Simulcast(s) => s.select(info, want),
            Strategy::Svc(s) => s.select(info, want),
        }
    }
    fn needs_keyframe(&self, want: Target) -> Option<u8> {
        match self {
            Strategy::Simulcast(s) => s.needs_keyframe(want),
            Strategy::Svc(s) => s.needs_keyframe(want),
        }
    }
    fn current(&self) -> Option<Target> {
        match self {
            Strategy::Simulcast(s) => s.current(),
            Strategy::Svc(s) => s.current(),
        }
    }
    fn reset(&mut self) {
        match self {
            Strategy::Simulcast(s) => s.reset(),
            Strategy::Svc(s) => s.reset(),
        }
    }
}
