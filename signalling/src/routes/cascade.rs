//! Cascade endpoints: `GET /api/v1/cascade` (the tree below this node, with link health; any
//! signed-in user), `PUT`/`DELETE /api/v1/cascade/parent` (admin: which node this one joins)
//! and `GET /api/v1/cascade/link` (a child node's control link: a WebSocket authenticated by a
//! link token, not a user token — see engine::cascade).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use actix_ws::Message;

use engine::cascade::actor::{
    AuthorizeChild, ChildClosed, ChildHello, ChildSaid, Execute, GetView, IsCurrent, NodeName, SetParent,
};
use engine::cascade::health::DOWN_AFTER;
use engine::cascade::parent::{self, StoredParent};
use engine::cascade::ControlAction;
use engine::cascade::LinkMessage;

use crate::error::ApiError;
use crate::state::{token_of, AppState, Authed};

/// Link messages are small (the subtree of a large province fits easily).
const MAX_FRAME: usize = 1024 * 1024;

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

#[get("/api/v1/cascade")]
pub async fn tree(state: web::Data<AppState>, _who: Authed) -> Result<HttpResponse, ApiError> {
    let view = state.cascade.send(GetView).await.map_err(|_| ApiError::internal("cascade actor gone"))?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentRequest {
    /// `http://host:port` of the parent's API.
    pub url: String,
    /// The secret the parent's `cascade_secret` names; this node's own `cascade_secret` if
    /// left out.
    pub secret: Option<String>,
}

const MAX_SECRET: usize = 1024;

/// Join another parent (admin): the control link and every room's link move to it at once,
/// and the choice is kept in the store (it outlives a restart, and the configuration's).
#[put("/api/v1/cascade/parent")]
pub async fn set_parent(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    body: web::Json<ParentRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let body = body.into_inner();
    let secret = match body.secret {
        Some(s) => s,
        None => state
            .cascade_secret
            .as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or_else(|| ApiError::bad_request("give the parent's secret (this node has no cascade_secret)"))?,
    };
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(ApiError::bad_request(format!("the secret must be 1-{MAX_SECRET} bytes")));
    }
    let stored = StoredParent { url: Some(body.url), secret: Some(secret) };
    apply_parent(&state, &who, &req, stored).await
}

/// Be the top of the cascade (admin): the links up close, and stay closed after a restart.
#[delete("/api/v1/cascade/parent")]
pub async fn remove_parent(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    apply_parent(&state, &who, &req, StoredParent::default()).await
}

async fn apply_parent(
    state: &AppState,
    who: &Authed,
    req: &HttpRequest,
    p: StoredParent,
) -> Result<HttpResponse, ApiError> {
    let target = p.url.clone().unwrap_or_else(|| "none".into());
    let set = SetParent { url: p.url.clone(), secret: p.secret.clone().map(String::into_bytes) };
    match state.cascade.send(set).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            state.audit(&who.user, "cascade.parent", &target, req, false);
            return Err(ApiError::bad_request(e));
        }
        Err(_) => return Err(ApiError::internal("cascade actor gone")),
    }
    if let Err(e) = parent::save(state.store.as_ref(), &p) {
        state.audit(&who.user, "cascade.parent", &target, req, false);
        return Err(ApiError::internal(format!("the parent is set but could not be kept for a restart: {e}")));
    }
    state.audit(&who.user, "cascade.parent", &target, req, true);
    let view = state.cascade.send(GetView).await.map_err(|_| ApiError::internal("cascade actor gone"))?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// A node at or below this one, or "*" for this node and all below.
    pub target: String,
    /// The conference's room id (the same on every node it spans).
    pub room: String,
    pub action: ControlAction,
}

/// Control from this level downwards (admin): applied on the target node(s), each answering;
/// `403` if the target is not this node nor below it.
#[post("/api/v1/cascade/commands")]
pub async fn command(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    body: web::Json<CommandRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let body = body.into_inner();
    let target = format!("{}@{}", body.room, body.target);
    let me = state.cascade.send(NodeName).await.map_err(|_| ApiError::internal("cascade actor gone"))?;
    let run = Execute { target: body.target, room: body.room, action: body.action, by: format!("{}@{me}", who.user) };
    match state.cascade.send(run).await {
        Ok(Ok(results)) => {
            let ok = results.iter().all(|r| r.ok);
            state.audit(&who.user, "cascade.command", &target, &req, ok);
            Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": ok, "results": results })))
        }
        Ok(Err(e)) => {
            state.audit(&who.user, "cascade.command", &target, &req, false);
            Err(ApiError::forbidden(e))
        }
        Err(_) => Err(ApiError::internal("cascade actor gone")),
    }
}

#[get("/api/v1/cascade/link")]
pub async fn link(state: web::Data<AppState>, req: HttpRequest, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let token = token_of(&req).ok_or_else(|| ApiError::unauthorized("a cascade link token is required"))?;
    let node = match state.cascade.send(AuthorizeChild { token }).await {
        Ok(Ok(node)) => node,
        Ok(Err(e)) => {
            state.audit("node:?", "cascade.link", "", &req, false);
            return Err(ApiError::unauthorized(e));
        }
        Err(_) => return Err(ApiError::internal("cascade actor gone")),
    };
    let (response, mut session, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut stream = stream.max_frame_size(MAX_FRAME);
    let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let who = format!("node:{node}");

    actix_web::rt::spawn(async move {
        let send = |session: &mut actix_ws::Session, m: &LinkMessage| {
            let text = serde_json::to_string(m).unwrap_or_default();
            let mut s = session.clone();
            async move { s.text(text).await.is_ok() }
        };
        let refuse = |code: &str, message: String| LinkMessage::Error { code: code.into(), message };

        // 1. The hello must name the node the token names.
        let hello = tokio::time::timeout(DOWN_AFTER, stream.recv()).await;
        let said = match hello {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<LinkMessage>(&t).ok(),
            _ => None,
        };
        match said {
            Some(LinkMessage::Hello { node: n }) if n == node => {}
            _ => {
                send(
                    &mut session,
                    &refuse("bad_request", "the first message must be hello with the token's node".into()),
                )
                .await;
                let _ = session.close(None).await;
                return;
            }
        }
        let (down_tx, mut down_rx) = tokio::sync::mpsc::unbounded_channel::<LinkMessage>();
        let me = match state.cascade.send(ChildHello { node: node.clone(), connection, down: down_tx }).await {
            Ok(Ok(me)) => me,
            Ok(Err(e)) => {
                send(&mut session, &refuse("conflict", e)).await;
                let _ = session.close(None).await;
                state.audit(&who, "cascade.link", &node, &req, false);
                return;
            }
            Err(_) => return,
        };
        state.audit(&who, "cascade.link", &node, &req, true);
        if !send(&mut session, &LinkMessage::Welcome { node: me }).await {
            state.cascade.do_send(ChildClosed { node: node.clone(), connection });
            return;
        }

        // 2. Heartbeats and subtree reports until the child is silent, gone or replaced.
        let mut check = tokio::time::interval(Duration::from_millis(250));
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                inc = stream.recv() => match inc {
                    Some(Ok(Message::Text(t))) => { last_heard = Instant::now(); match serde_json::from_str::<LinkMessage>(&t) {
                        Ok(LinkMessage::Ping { seq, rtt_ms }) => {
                            if !send(&mut session, &LinkMessage::Pong { seq }).await {
                                break;
                            }
                            state.cascade.do_send(ChildSaid { node: node.clone(), connection, message: LinkMessage::Ping { seq, rtt_ms } });
                        }
                        Ok(m @ (LinkMessage::Subtree { .. } | LinkMessage::Ack { .. })) => {
                            state.cascade.do_send(ChildSaid { node: node.clone(), connection, message: m });
                        }
                        Ok(LinkMessage::Command { .. }) => {
                            state.audit(&who, "cascade.command", &node, &req, false);
                            send(&mut session, &refuse("forbidden", "commands travel downwards only".into())).await;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            send(&mut session, &refuse("bad_json", e.to_string())).await;
                        }
                    }},
                    Some(Ok(Message::Ping(b))) => {
                        let _ = session.pong(&b).await;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                down = down_rx.recv() => match down {
                    Some(m) => {
                        if !send(&mut session, &m).await {
                            break;
                        }
                    }
                    None => break,
                },
                _ = check.tick() => {
                    // Silent for DOWN_AFTER: the tree marks it down; end the connection.
                    if last_heard.elapsed() >= DOWN_AFTER {
                        break;
                    }
                    let current = state.cascade.send(IsCurrent { node: node.clone(), connection }).await.unwrap_or(false);
                    if !current {
                        break;
                    }
                }
            }
        }
        state.cascade.do_send(ChildClosed { node: node.clone(), connection });
        state.audit(&who, "cascade.unlink", &node, &req, true);
        let _ = session.close(None).await;
    });
    Ok(response)
}
