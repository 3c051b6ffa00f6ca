//! yunshi's signalling: the HTTP API (actix-web), the conference WebSocket, WHIP/WHEP,
//! authentication, metrics and the embedded web client. It translates the outside world
//! (JSON, SDP, tokens) into engine messages and back.

pub mod error;
pub mod jwt;
pub mod routes;
pub mod state;

use actix_web::{middleware, web, App, HttpServer};

use crate::error::ApiError;
pub use crate::state::AppState;

/// Largest request body accepted anywhere.
pub const MAX_BODY: usize = 64 * 1024;

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(MAX_BODY).error_handler(|err, _| {
        use actix_web::error::JsonPayloadError as E;
        let e = match &err {
            E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body exceeds {MAX_BODY} bytes"),
            ),
            E::ContentType => ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/json",
            ),
            other => ApiError::new(actix_web::http::StatusCode::BAD_REQUEST, "bad_json", other.to_string()),
        };
        e.into()
    })
}

fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY)
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| ApiError::bad_request(err.to_string()).into())
}

/// All routes; used by the server and by in-process tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(payload_config())
        .app_data(path_config())
        .service(routes::ops::healthz)
        .service(routes::ops::metrics)
        .service(routes::ops::openapi)
        .service(routes::ops::audit)
        .service(routes::auth::login)
        .service(routes::users::list)
        .service(routes::users::create)
        .service(routes::users::remove)
        .service(routes::rooms::create)
        .service(routes::rooms::list)
        .service(routes::rooms::get)
        .service(routes::rooms::remove)
        .service(routes::ws::conference)
        .service(routes::cascade::tree)
        .service(routes::cascade::link)
        .service(routes::cascade::command)
        .service(routes::cascade::set_parent)
        .service(routes::cascade::remove_parent)
        .configure(routes::whip::configure)
        .configure(routes::static_files::configure);
}

/// Serve the API on `bind` until the process ends.
pub async fn serve(state: web::Data<AppState>, bind: std::net::SocketAddr) -> std::io::Result<()> {
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Bearer tokens, never cookies: any origin may call the API (WHIP/WHEP players live
            // on other sites), which is what CORS `*` allows.
            .wrap(middleware::DefaultHeaders::new().add(("Access-Control-Allow-Origin", "*")))
            .wrap(
                // Log the path only: WebSocket URLs carry the token in their query string.
                middleware::Logger::new("%a %{method}xi %{path}xi %s %Dms")
                    .custom_request_replace("method", |req| req.method().to_string())
                    .custom_request_replace("path", |req| req.path().to_string())
                    .exclude("/healthz")
                    .exclude("/metrics"),
            )
            .configure(configure)
    })
    .workers(2)
    .bind(bind)?
    .run()
    .await
}
