//! The web client, embedded in the binary at build time (see build.rs).

use actix_web::{web, HttpRequest, HttpResponse};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = match req.path() {
        "/" => "/index.html",
        "/console" | "/console/" => "/console/index.html",
        p => p,
    };
    match WEB_ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, body, mime)) => {
            HttpResponse::Ok().content_type(*mime).insert_header(("Cache-Control", "no-cache")).body(*body)
        }
        None => HttpResponse::NotFound().json(serde_json::json!({"error": "not_found", "message": "no such page"})),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.default_service(web::get().to(serve));
}
