//! WHIP (RFC 9725) ingest and WHEP playback: one HTTP POST with an SDP offer, a `201` with the
//! answer and a `Location` to DELETE when done.

use actix::Actor;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use engine::device::{Device, Negotiate, Stop};
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
        .insert_header(("Access-Control-Expose-Headers", "Location"))
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
    Ok(HttpResponse::Created()
        .content_type("application/sdp")
        .insert_header((header::LOCATION, location))
        .insert_header(("Access-Control-Expose-Headers", "Location"))
        .body(answer))
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
