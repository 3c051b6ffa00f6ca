//! The conference WebSocket protocol (docs/api.md), as typed messages.

use serde::{Deserialize, Serialize};

use sfu::TrackKind;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    Speaker,
    Attendee,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

impl From<TrackKind> for Kind {
    fn from(k: TrackKind) -> Self {
        match k {
            TrackKind::Audio => Kind::Audio,
            TrackKind::Video => Kind::Video,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrackInfo {
    pub id: String,
    pub participant_id: String,
    pub kind: Kind,
    pub muted: bool,
    /// Who published it, wherever in the cascade that is. A track that came over a link is
    /// one of the link participant's many; this names the venue. Absent only while the link
    /// has not said yet (`track_source` follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
}

/// The node a track was published on and the name of its publisher there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrackSource {
    pub node: String,
    pub participant: String,
}

/// One entry of a link's `track_sources`: its track `label` (its id at the link's other end)
/// comes from `source`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LabelledSource {
    pub label: String,
    pub node: String,
    pub participant: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tracks: Vec<TrackInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoomInfo {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Join {
        name: Option<String>,
        role: Option<Role>,
    },
    PublishOffer {
        sdp: String,
    },
    SubscribeAnswer {
        sdp: String,
    },
    Mute {
        kind: Kind,
        muted: bool,
    },
    Subscribe {
        track_id: String,
    },
    Unsubscribe {
        track_id: String,
    },
    MuteParticipant {
        participant_id: String,
        kind: Kind,
        muted: bool,
    },
    /// What a tile shows of one received track: its height in device pixels, a frame-rate
    /// cap (temporal layer), or nothing at all (hidden).
    SetQuality {
        track_id: String,
        max_height: Option<u16>,
        max_temporal: Option<u8>,
        paused: Option<bool>,
    },
    Leave,
    Ping,
    /// From a child node's link only: which of the tracks it receives from this room someone
    /// below watches (by their ids here); the rest are paused.
    CascadeWanted {
        tracks: Vec<String>,
    },
    /// From a child node's link only: of the simulcast track it receives on m-line `mid`, only
    /// these RIDs are watched below (its dynacast); the others are not sent down.
    LinkLayers {
        mid: String,
        active: Vec<String>,
    },
    /// From a child node's link only: the venue behind each track it publishes (all of them,
    /// sent before the offer that carries a new one).
    TrackSources {
        tracks: Vec<LabelledSource>,
    },
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        participant_id: String,
        role: Role,
        room: RoomInfo,
        participants: Vec<ParticipantInfo>,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
    },
    /// Keep only these simulcast encodings (RIDs) of the publish m-line `mid` active: nobody
    /// receives the others. Sent again, with more, as soon as someone does.
    PublishLayers {
        mid: String,
        active: Vec<String>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant_id: String,
    },
    TrackPublished {
        track: TrackInfo,
    },
    TrackUnpublished {
        track_id: String,
        participant_id: String,
    },
    /// A track's venue, learnt after the track was announced (see `TrackInfo::source`).
    TrackSource {
        track_id: String,
        participant_id: String,
        source: TrackSource,
    },
    TrackMuted {
        track_id: String,
        participant_id: String,
        kind: Kind,
        muted: bool,
    },
    MuteRequested {
        kind: Kind,
        muted: bool,
        by: String,
    },
    ActiveSpeaker {
        participant_id: String,
    },
    /// Control from a higher level of a cascaded conference (`by` is user@node):
    /// show `venue` in the main view.
    RollCall {
        venue: String,
        by: String,
    },
    /// Watch `venue` and do not let the user switch away until `view_unlocked`.
    ViewLocked {
        venue: String,
        by: String,
    },
    ViewUnlocked {
        by: String,
    },
    /// To a child node's link only: which of its tracks (by its labels) someone here watches;
    /// it pauses the others at its end.
    CascadeWanted {
        tracks: Vec<String>,
    },
    /// Arrange the screen as `layout` (e.g. "1+5", "3x3").
    Layout {
        layout: String,
        by: String,
    },
    RoomClosed {
        reason: String,
    },
    Pong,
    Error {
        error: String,
        message: String,
    },
}

impl ServerMessage {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMessage::Error { error: code.to_string(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_messages_and_rejects_unknown() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"mute","kind":"audio","muted":true}"#).unwrap();
        assert_eq!(m, ClientMessage::Mute { kind: Kind::Audio, muted: true });
        let j: ClientMessage = serde_json::from_str(r#"{"type":"join"}"#).unwrap();
        assert_eq!(j, ClientMessage::Join { name: None, role: None });
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"explode"}"#).is_err());
        let q: ClientMessage =
            serde_json::from_str(r#"{"type":"set_quality","track_id":"t3","max_height":180}"#).unwrap();
        assert_eq!(
            q,
            ClientMessage::SetQuality {
                track_id: "t3".into(),
                max_height: Some(180),
                max_temporal: None,
                paused: None
            }
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"mute","kind":"smell","muted":true}"#).is_err());
    }

    #[test]
    fn a_link_names_the_venues_behind_its_tracks() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"track_sources","tracks":[{"label":"t4","node":"county","participant":"hall"}]}"#,
        )
        .unwrap();
        let source = LabelledSource { label: "t4".into(), node: "county".into(), participant: "hall".into() };
        assert_eq!(m, ClientMessage::TrackSources { tracks: vec![source] });
        let extra = r#"{"type":"track_sources","tracks":[{"label":"t4","node":"c","participant":"h","x":1}]}"#;
        assert!(serde_json::from_str::<ClientMessage>(extra).is_err());
        // A track whose venue is not known yet says nothing of it.
        let t =
            TrackInfo { id: "t1".into(), participant_id: "p1".into(), kind: Kind::Video, muted: false, source: None };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"id":"t1","participant_id":"p1","kind":"video","muted":false}"#
        );
    }

    #[test]
    fn server_messages_are_tagged() {
        let s = serde_json::to_string(&ServerMessage::ParticipantLeft { participant_id: "p1".into() }).unwrap();
        assert_eq!(s, r#"{"type":"participant_left","participant_id":"p1"}"#);
    }
}
