//! Operations: health, Prometheus metrics, the OpenAPI document.

use actix_web::{get, web, HttpRequest, HttpResponse};
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

use sfu::metrics::METRICS;

use crate::error::ApiError;
use crate::state::{AppState, Authed};

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"status": "ok", "rooms": METRICS.rooms.get(), "participants": METRICS.participants.get()}))
}

#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !state.metrics_public {
        use actix_web::FromRequest;
        Authed::extract(&req).await?;
    }
    let mut buf = Vec::new();
    TextEncoder::new().encode(&METRICS.registry.gather(), &mut buf).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(buf))
}

#[get("/api/v1/openapi.json")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(include_str!("../openapi.json"))
}

#[get("/api/v1/audit")]
pub async fn audit(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    Ok(HttpResponse::Ok().json(state.store.audit_log(1000)?))
}
