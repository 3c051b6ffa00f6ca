//! The conference WebSocket: `GET /api/v1/rooms/{id}/ws`. The first message must be `join`;
//! after that every client message goes to the participant's Device actor and every room
//! event comes back on the socket.
//!
//! The server pings (WebSocket ping frames, which browsers and WebSocket libraries answer by
//! themselves) and ends a session that stays silent: a client whose network vanished without a
//! word leaves the room instead of staying on as a ghost. A child node's link is pinged as
//! often as its control link and given up as soon (engine::cascade::health).

use std::time::{Duration, Instant};

use actix::Actor;
use actix_web::{get, web, HttpRequest, HttpResponse};
use actix_ws::Message;
use tokio::sync::mpsc;

use engine::device::{Device, FromClient, StartSubscribing, Stop};
use engine::protocol::{ClientMessage, Role, ServerMessage};
use engine::room::{Endpoint, Join};

use crate::error::ApiError;
use crate::state::{AppState, Authed};

/// Largest message a client may send (an SDP offer with simulcast fits easily).
const MAX_FRAME: usize = 64 * 1024;

/// A person's client: pinged every 5 s, gone after 15 s of silence (LiveKit's defaults).
const PING_EVERY: Duration = Duration::from_secs(5);
const SILENT_FOR: Duration = Duration::from_secs(15);

#[get("/api/v1/rooms/{id}/ws")]
pub async fn conference(
    state: web::Data<AppState>,
    who: Result<Authed, ApiError>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // A user, or a child node bringing its venue into this conference (engine::cascade::media).
    let who = match who {
        Ok(w) => w,
        Err(e) => Authed::child_node(&state, &req).ok_or(e)?,
    };
    let room = state.open_room(&id).await?;
    let (response, mut session, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut stream = stream.max_frame_size(MAX_FRAME);
    let room_id = id.into_inner();
    let state = state.clone();

    actix_web::rt::spawn(async move {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ServerMessage>();
        let send = |session: &mut actix_ws::Session, m: &ServerMessage| {
            let text = serde_json::to_string(m).unwrap_or_default();
            let mut s = session.clone();
            async move { s.text(text).await.is_ok() }
        };

        // 1. Wait for `join`.
        let (name, role) = loop {
            match stream.recv().await {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ClientMessage>(&t) {
                    Ok(ClientMessage::Join { name, role }) => {
                        // Only the room's creator (or an admin) is host; others speak or attend.
                        let record = state.store.get_room(&room_id).ok().flatten();
                        let may_host = record.is_some_and(|r| r.created_by == who.user)
                            || who.role == engine::store::UserRole::Admin;
                        let role = match role {
                            Some(Role::Attendee) => Role::Attendee,
                            _ if may_host => Role::Host,
                            _ => Role::Speaker,
                        };
                        let name = name
                            .filter(|n| !n.trim().is_empty())
                            .map(|n| n.chars().take(64).collect())
                            .unwrap_or_else(|| who.user.clone());
                        break (name, role);
                    }
                    Ok(_) => {
                        send(&mut session, &ServerMessage::error("bad_request", "the first message must be join"))
                            .await;
                    }
                    Err(e) => {
                        send(&mut session, &ServerMessage::error("bad_json", e.to_string())).await;
                    }
                },
                Some(Ok(Message::Ping(b))) => {
                    let _ = session.pong(&b).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        };
        let endpoint = if who.user.starts_with("node:") { Endpoint::Cascade } else { Endpoint::Conference };
        let joined = match room.send(Join { name, role, endpoint, out: Some(out_tx.clone()) }).await {
            Ok(j) => j,
            Err(_) => return,
        };
        state.audit(&who.user, "room.join", &room_id, &req, true);
        // The Device answers on the same channel the room uses, so the client sees one ordered stream.
        let device = Device::new(joined.member, role, room.clone(), joined.room, joined.worker, Some(out_tx));
        let device = if endpoint == Endpoint::Cascade { device.cascade_link() } else { device }.start();
        device.do_send(StartSubscribing);

        // 2. Pump both directions until either side ends, or the client falls silent.
        let (every, silent_for) = if endpoint == Endpoint::Cascade {
            (engine::cascade::health::HEARTBEAT, engine::cascade::health::DOWN_AFTER)
        } else {
            (PING_EVERY, SILENT_FOR)
        };
        let mut ping = tokio::time::interval(every);
        let mut heard = Instant::now();
        let mut timed_out = false;
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    if heard.elapsed() >= silent_for {
                        timed_out = true;
                        break;
                    }
                    if session.ping(b"").await.is_err() {
                        break;
                    }
                },
                out = out_rx.recv() => match out {
                    Some(m) => {
                        let closed = matches!(m, ServerMessage::RoomClosed { .. });
                        if !send(&mut session, &m).await || closed {
                            break;
                        }
                    }
                    None => break,
                },
                inc = stream.recv() => {
                    heard = Instant::now();
                    match inc {
                        Some(Ok(Message::Text(t))) => match serde_json::from_str::<ClientMessage>(&t) {
                            Ok(ClientMessage::Leave) => break,
                            Ok(m) => device.do_send(FromClient(m)),
                            Err(e) => {
                                send(&mut session, &ServerMessage::error("bad_json", e.to_string())).await;
                            }
                        },
                        Some(Ok(Message::Ping(b))) => {
                            let _ = session.pong(&b).await;
                        }
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Err(e)) => {
                            send(&mut session, &ServerMessage::error("bad_request", e.to_string())).await;
                            break;
                        }
                        Some(Ok(_)) => {}
                    }
                },
            }
        }
        device.do_send(Stop);
        if timed_out {
            tracing::info!(room = %room_id, user = %who.user, "conference socket silent for {silent_for:?}: left");
        }
        state.audit(&who.user, if timed_out { "room.timeout" } else { "room.leave" }, &room_id, &req, true);
        let _ = session.close(None).await;
    });
    Ok(response)
}
