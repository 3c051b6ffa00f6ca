//! `POST /api/v1/auth/login`.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use engine::password;
use engine::store::now_secs;

use crate::error::ApiError;
use crate::jwt::Claims;
use crate::state::{AppState, TOKEN_TTL_SECS};

static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| password::hash("no such user here"));

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

#[post("/api/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let Login { username, password: pw } = body.into_inner();
    let user = state.store.get_user(&username)?;
    // An unknown user costs the same Argon2 work as a wrong password, so response time does
    // not tell which names exist.
    let phc = user.as_ref().map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let ok = password::verify_async(pw, phc).await;
    let user = user.filter(|_| ok);
    let Some(user) = user else {
        state.audit(&username, "login", "", &req, false);
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    let now = now_secs();
    let role = serde_json::to_value(user.role).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let exp = now + TOKEN_TTL_SECS;
    let token = state.jwt.sign(&Claims { sub: user.name.clone(), role: role.clone(), iat: now, exp });
    state.audit(&user.name, "login", "", &req, true);
    Ok(HttpResponse::Ok().json(json!({"token": token, "expires_at": exp, "user": {"name": user.name, "role": role}})))
}
