//! Shared state of the HTTP side, and the authenticated-user extractor.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};

use actix::Addr;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use engine::device::Device;
use engine::store::{now_millis, now_secs, AuditEvent, Store, UserRole};
use engine::Node;

use crate::error::ApiError;
use crate::jwt::JwtKey;

/// Token lifetime.
pub const TOKEN_TTL_SECS: u64 = 12 * 3600;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub node: Addr<Node>,
    pub jwt: JwtKey,
    /// `/metrics` without a token (for Prometheus scrapers on a trusted network).
    pub metrics_public: bool,
    /// This node's place in the cascade (engine::cascade).
    pub cascade: Addr<engine::Cascade>,
    /// Secret child nodes sign their link tokens with (they also join conferences with them).
    pub cascade_secret: Option<Vec<u8>>,
    /// Live WHIP/WHEP sessions by their Location path.
    pub sessions: Mutex<HashMap<String, Addr<Device>>>,
}

impl AppState {
    /// The live actor of a stored room, or 404.
    pub async fn open_room(&self, id: &str) -> Result<Addr<engine::Room>, ApiError> {
        let room = self.node.send(engine::node::OpenRoom { id: id.to_string() }).await.ok().flatten();
        room.ok_or_else(|| ApiError::not_found("no such room"))
    }

    /// Append to the audit log; a failure is logged, it never fails the request it records.
    pub fn audit(&self, who: &str, action: &str, target: &str, req: &HttpRequest, ok: bool) {
        let from = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let ev =
            AuditEvent { at_ms: now_millis(), who: who.into(), action: action.into(), target: target.into(), from, ok };
        if let Err(e) = self.store.audit(&ev) {
            tracing::error!("audit write failed: {e}");
        }
    }
}

/// The caller, proven by a valid token (header `Authorization: Bearer`, or `?token=` for
/// WebSockets, which browsers cannot give headers).
#[derive(Clone, Debug)]
pub struct Authed {
    pub user: String,
    pub role: UserRole,
}

impl Authed {
    /// A child node joining a conference's room here with its cascade link token (only the
    /// conference WebSocket takes these; every other route wants a user).
    pub fn child_node(state: &AppState, req: &HttpRequest) -> Option<Authed> {
        let secret = state.cascade_secret.as_ref()?;
        let node = engine::cascade::token::verify(secret, &token_of(req)?, now_secs()).ok()?;
        Some(Authed { user: format!("node:{node}"), role: UserRole::User })
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == UserRole::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("administrator role required"))
        }
    }
}

pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        return h.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok()?;
    q.get("token").cloned()
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::internal("no state")));
        };
        let Some(token) = token_of(req) else {
            return ready(Err(ApiError::unauthorized("a bearer token is required")));
        };
        let claims = match state.jwt.verify(&token, now_secs()) {
            Ok(c) => c,
            Err(crate::jwt::JwtError::Expired) => return ready(Err(ApiError::unauthorized("token expired"))),
            Err(_) => return ready(Err(ApiError::unauthorized("invalid token"))),
        };
        // The user may have been deleted since the token was issued.
        let user = match state.store.get_user(&claims.sub) {
            Ok(Some(u)) => u,
            Ok(None) => return ready(Err(ApiError::unauthorized("user no longer exists"))),
            Err(e) => return ready(Err(e.into())),
        };
        ready(Ok(Authed { user: user.name, role: user.role }))
    }
}
