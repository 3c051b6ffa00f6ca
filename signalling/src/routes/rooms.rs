//! Rooms: create, list, inspect, delete.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use engine::node::{Counts, OpenRoom, ShutRoom};
use engine::room::Snapshot;
use engine::store::{now_secs, RoomRecord};

use crate::error::ApiError;
use crate::routes::users::valid_name;
use crate::state::{AppState, Authed};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
    id: Option<String>,
}

fn view(r: &RoomRecord, participants: usize) -> serde_json::Value {
    json!({"id": r.id, "name": r.name, "created_by": r.created_by, "created_at": r.created_at, "participants": participants})
}

fn random_id() -> String {
    use rand::Rng;
    const A: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..10).map(|_| A[rng.gen_range(0..A.len())] as char).collect()
}

#[post("/api/v1/rooms")]
pub async fn create(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    body: web::Json<NewRoom>,
) -> Result<HttpResponse, ApiError> {
    let NewRoom { name, id } = body.into_inner();
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request("name must be 1–200 characters"));
    }
    let id = match id {
        Some(id) if !valid_name(&id) => {
            return Err(ApiError::bad_request("id must be 1–64 characters of letters, digits, '-', '_' or '.'"))
        }
        Some(id) => id,
        None => random_id(),
    };
    if state.store.get_room(&id)?.is_some() {
        return Err(ApiError::conflict("a room with this id exists"));
    }
    let room = RoomRecord { id, name, created_by: who.user.clone(), created_at: now_secs() };
    state.store.put_room(&room)?;
    state.audit(&who.user, "room.create", &room.id, &req, true);
    Ok(HttpResponse::Created().json(view(&room, 0)))
}

#[get("/api/v1/rooms")]
pub async fn list(state: web::Data<AppState>, _who: Authed) -> Result<HttpResponse, ApiError> {
    let mut rooms = state.store.list_rooms()?;
    rooms.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let counts = state.node.send(Counts).await.unwrap_or_default();
    Ok(HttpResponse::Ok()
        .json(rooms.iter().map(|r| view(r, counts.get(&r.id).copied().unwrap_or(0))).collect::<Vec<_>>()))
}

#[get("/api/v1/rooms/{id}")]
pub async fn get(state: web::Data<AppState>, _who: Authed, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let room = state.store.get_room(&id)?.ok_or_else(|| ApiError::not_found("no such room"))?;
    let counts = state.node.send(Counts).await.unwrap_or_default();
    let n = counts.get(&room.id).copied().unwrap_or(0);
    let members = if n > 0 {
        match state.node.send(OpenRoom { id: room.id.clone() }).await {
            Ok(Some(addr)) => addr.send(Snapshot).await.unwrap_or_default(),
            _ => vec![],
        }
    } else {
        vec![]
    };
    let mut v = view(&room, n);
    v["members"] = serde_json::to_value(members).unwrap_or_default();
    Ok(HttpResponse::Ok().json(v))
}

#[delete("/api/v1/rooms/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    who: Authed,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.store.get_room(&id)?.ok_or_else(|| ApiError::not_found("no such room"))?;
    if room.created_by != who.user {
        who.require_admin()?;
    }
    state.store.delete_room(&id)?;
    state.node.do_send(ShutRoom { id: room.id.clone(), reason: "room deleted".into() });
    state.audit(&who.user, "room.delete", &room.id, &req, true);
    Ok(HttpResponse::NoContent().finish())
}
