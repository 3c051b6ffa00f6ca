//! WHIP (RFC 9725) ingest and WHEP playback: one HTTP POST with an SDP offer, a `201` with the
//! answer and a `Location` to DELETE when done. A WHEP session also takes layer requests
//! (`POST {Location}/layer`, WHEP's layer-selection extension, announced in a `Link` header):
//! the player's height and a frame-rate cap for the video it is shown.

use actix::Actor;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use engine::device::{Device, Negotiate, SetLayer, Stop};
use engine::protocol::Role;
use engine::room::{Endpoint, Join};
use sfu::PeerKind;

use crate::error::ApiError;
use crate::state::{AppState, Authed};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/whip/{room}")
            .route(web::post().to(whip))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
    )
    .service(
        web::resource("/whep/{room}")
            .route(web::post().to(whep))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
    )
    .service(
        web::resource("/whep/{room}/{session}/layer")
            .route(web::post().to(layer))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
    )
    .service(
        web::resource("/{proto}/{room}/{session}")
            .guard(actix_web::guard::fn_guard(|ctx| {
                let p = ctx.head().uri.path();
                p.starts_with("/whip/") || p.starts_with("/whep/")
            }))
            .route(web::delete().to(end))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
    );
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Methods", "POST, DELETE, OPTIONS"))
        .insert_header(("Access-Control-Allow-Headers", "Authorization, Content-Type"))
        .insert_header(("Access-Control-Expose-Headers", "Location, Link"))
        .insert_header(("Access-Control-Max-Age", "600"))
        .finish()
}

async fn whip(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    room: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    start(state, who, req, room.into_inner(), body, PeerKind::Whip).await
}

async fn whep(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    room: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    start(state, who, req, room.into_inner(), body, PeerKind::Whep).await
}

async fn start(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    room_id: String,
    body: web::Bytes,
    kind: PeerKind,
) -> Result<HttpResponse, ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/sdp") {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/sdp",
        ));
    }
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(actix_web::http::StatusCode::BAD_REQUEST, "bad_sdp", "SDP is not UTF-8"))?
        .to_string();
    let room = state.open_room(&room_id).await?;
    let (proto, endpoint, suffix, role) = match kind {
        PeerKind::Whip => ("whip", Endpoint::Whip, "(whip)", Role::Speaker),
        _ => ("whep", Endpoint::Whep, "(whep)", Role::Attendee),
    };
    let joined = room
        .send(Join { name: format!("{} {suffix}", who.user), role, endpoint, out: None })
        .await
        .map_err(|_| ApiError::internal("room is gone"))?;
    let device = Device::new(joined.member, role, room, joined.room, joined.worker, None).start();
    let answer = device.send(Negotiate { kind, offer }).await.map_err(|_| ApiError::internal("device is gone"))?;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            state.audit(&who.user, &format!("{proto}.start"), &room_id, &req, false);
            return Err(e.into());
        }
    };
    let session = format!("{:016x}", rand::random::<u64>());
    let location = format!("/{proto}/{room_id}/{session}");
    state.sessions.lock().expect("sessions lock").insert(location.clone(), device);
    state.audit(&who.user, &format!("{proto}.start"), &room_id, &req, true);
    let mut created = HttpResponse::Created();
    created.content_type("application/sdp").insert_header(("Access-Control-Expose-Headers", "Location, Link"));
    if kind == PeerKind::Whep {
        created.insert_header((header::LINK, format!("<{location}/layer>; rel=\"{LAYER_REL}\"")));
    }
    Ok(created.insert_header((header::LOCATION, location)).body(answer))
}

/// The link relation of WHEP's layer-selection extension (draft-ietf-wish-whep, "Layer
/// Selection"); the layer URL is the session's `Location` + `/layer`.
pub const LAYER_REL: &str = "urn:ietf:params:whep:ext:core:layer";

/// A layer request. Of the extension's fields yunshi follows the ones that say what the player
/// can use (`maxHeight`, `maxTemporalLayerId`), and `paused` (a hidden player); it chooses the
/// layer itself, as for every viewer, so a fixed `encodingId` or `spatialLayerId` is refused.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LayerRequest {
    media_id: Option<String>,
    max_height: Option<u16>,
    max_width: Option<u16>,
    max_temporal_layer_id: Option<u8>,
    paused: Option<bool>,
}

async fn layer(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (room, session) = path.into_inner();
    let location = format!("/whep/{room}/{session}");
    let device = state.sessions.lock().expect("sessions lock").get(&location).cloned();
    let Some(device) = device else {
        return Err(ApiError::not_found("no such WHEP session"));
    };
    let r: LayerRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "layer request: {e} (supported: maxHeight, maxWidth, maxTemporalLayerId, paused, mediaId)"
        ))
    })?;
    let _ = r.media_id; // one video per WHEP session: whichever m-line is named, it is that one
                        // A width cap becomes a height cap at 16:9, the shape of the streams yunshi serves.
    let from_width = r.max_width.map(|w| (w as u32 * 9 / 16) as u16);
    let max_height = match (r.max_height, from_width) {
        (Some(h), Some(w)) => Some(h.min(w)),
        (h, w) => h.or(w),
    };
    let constraint =
        sfu::LayerConstraint { max_height, max_temporal: r.max_temporal_layer_id, paused: r.paused.unwrap_or(false) };
    let done = device.send(SetLayer(constraint)).await.map_err(|_| ApiError::internal("session is gone"))?;
    state.audit(&who.user, "whep.layer", &location, &req, done.is_ok());
    done.map_err(ApiError::conflict)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn end(state: web::Data<AppState>, who: Authed, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.path().to_string();
    let device = state.sessions.lock().expect("sessions lock").remove(&path);
    let Some(device) = device else {
        return Err(ApiError::not_found("no such session"));
    };
    device.do_send(Stop);
    let proto = if path.starts_with("/whip/") { "whip" } else { "whep" };
    state.audit(&who.user, &format!("{proto}.stop"), &path, &req, true);
    Ok(HttpResponse::Ok().finish())
}
