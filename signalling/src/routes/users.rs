//! Users, administered by admins.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use engine::password;
use engine::store::{now_secs, User, UserRole};

use crate::error::ApiError;
use crate::state::{AppState, Authed};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    role: Option<UserRole>,
}

fn public(u: &User) -> serde_json::Value {
    json!({"name": u.name, "role": u.role, "created_at": u.created_at})
}

pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[get("/api/v1/users")]
pub async fn list(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let users = state.store.list_users()?;
    Ok(HttpResponse::Ok().json(users.iter().map(public).collect::<Vec<_>>()))
}

#[post("/api/v1/users")]
pub async fn create(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let NewUser { name, password: pw, role } = body.into_inner();
    if !valid_name(&name) {
        return Err(ApiError::bad_request("name must be 1–64 characters of letters, digits, '-', '_' or '.'"));
    }
    if let Err(p) = password::check_strength(&pw) {
        return Err(ApiError::new(actix_web::http::StatusCode::BAD_REQUEST, "weak_password", p.to_string()));
    }
    if state.store.get_user(&name)?.is_some() {
        return Err(ApiError::conflict("a user with this name exists"));
    }
    let hash = password::hash_async(pw).await.ok_or_else(|| ApiError::internal("password worker failed"))?;
    let user = User { name, password_hash: hash, role: role.unwrap_or(UserRole::User), created_at: now_secs() };
    state.store.put_user(&user)?;
    state.audit(&who.user, "user.create", &user.name, &req, true);
    Ok(HttpResponse::Created().json(public(&user)))
}

#[delete("/api/v1/users/{name}")]
pub async fn remove(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    if *name == who.user {
        return Err(ApiError::bad_request("you cannot delete yourself"));
    }
    if !state.store.delete_user(&name)? {
        return Err(ApiError::not_found("no such user"));
    }
    state.audit(&who.user, "user.delete", &name, &req, true);
    Ok(HttpResponse::NoContent().finish())
}
