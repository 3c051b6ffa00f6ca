//! Persistent state behind a small trait: users, rooms, settings and the append-only audit log.
//! sled is the embedded default; every write is flushed before it returns, so a `kill -9`
//! loses nothing that was acknowledged.

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// PHC string of an Argon2id hash.
    pub password_hash: String,
    pub role: UserRole,
    pub created_at: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    Admin,
    User,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomRecord {
    pub id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: u64,
}

/// One audited user action: who did what, when, from where.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub at_ms: u64,
    pub who: String,
    pub action: String,
    pub target: String,
    pub from: String,
    pub ok: bool,
}

pub trait Store: Send + Sync {
    fn get_user(&self, name: &str) -> StoreResult<Option<User>>;
    fn put_user(&self, user: &User) -> StoreResult<()>;
    fn delete_user(&self, name: &str) -> StoreResult<bool>;
    fn list_users(&self) -> StoreResult<Vec<User>>;
    fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>>;
    fn put_room(&self, room: &RoomRecord) -> StoreResult<()>;
    fn delete_room(&self, id: &str) -> StoreResult<bool>;
    fn list_rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    fn get_setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()>;
    fn audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// The newest `limit` audit events, oldest first.
    fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEvent>>;
}

pub struct SledStore {
    db: sled::Db,
    users: sled::Tree,
    rooms: sled::Tree,
    settings: sled::Tree,
    audit: sled::Tree,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let db = sled::Config::new().path(dir.join("store")).open().map_err(backend)?;
        Ok(Self {
            users: db.open_tree("users").map_err(backend)?,
            rooms: db.open_tree("rooms").map_err(backend)?,
            settings: db.open_tree("settings").map_err(backend)?,
            audit: db.open_tree("audit").map_err(backend)?,
            db,
        })
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: &[u8], value: &T) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tree.insert(key, bytes).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> StoreResult<Option<T>> {
        match tree.get(key).map_err(backend)? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> StoreResult<Vec<T>> {
        tree.iter()
            .values()
            .map(|v| {
                let v = v.map_err(backend)?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    fn remove(&self, tree: &sled::Tree, key: &[u8]) -> StoreResult<bool> {
        let existed = tree.remove(key).map_err(backend)?.is_some();
        self.db.flush().map_err(backend)?;
        Ok(existed)
    }
}

impl Store for SledStore {
    fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        Self::get(&self.users, name.as_bytes())
    }
    fn put_user(&self, user: &User) -> StoreResult<()> {
        self.put(&self.users, user.name.as_bytes(), user)
    }
    fn delete_user(&self, name: &str) -> StoreResult<bool> {
        self.remove(&self.users, name.as_bytes())
    }
    fn list_users(&self) -> StoreResult<Vec<User>> {
        Self::all(&self.users)
    }
    fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        Self::get(&self.rooms, id.as_bytes())
    }
    fn put_room(&self, room: &RoomRecord) -> StoreResult<()> {
        self.put(&self.rooms, room.id.as_bytes(), room)
    }
    fn delete_room(&self, id: &str) -> StoreResult<bool> {
        self.remove(&self.rooms, id.as_bytes())
    }
    fn list_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        Self::all(&self.rooms)
    }
    fn get_setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.settings.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }
    fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.settings.insert(key, value).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }
    fn audit(&self, event: &AuditEvent) -> StoreResult<()> {
        // Keys are sled's monotonic ids, big-endian, so iteration order is append order.
        let id = self.db.generate_id().map_err(backend)?;
        self.put(&self.audit, &id.to_be_bytes(), event)
    }
    fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        let mut out: Vec<AuditEvent> = self
            .audit
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv.map_err(backend)?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<StoreResult<_>>()?;
        out.reverse();
        Ok(out)
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("yunshi-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn users_rooms_and_audit_survive_reopen() {
        let dir = temp_dir("reopen");
        {
            let s = SledStore::open(&dir).unwrap();
            s.put_user(&User { name: "alice".into(), password_hash: "h".into(), role: UserRole::User, created_at: 1 })
                .unwrap();
            s.put_room(&RoomRecord { id: "r1".into(), name: "R".into(), created_by: "alice".into(), created_at: 2 })
                .unwrap();
            for i in 0..3 {
                s.audit(&AuditEvent {
                    at_ms: i,
                    who: "alice".into(),
                    action: format!("a{i}"),
                    target: "r1".into(),
                    from: "127.0.0.1".into(),
                    ok: true,
                })
                .unwrap();
            }
        }
        let s = SledStore::open(&dir).unwrap();
        assert_eq!(s.get_user("alice").unwrap().unwrap().role, UserRole::User);
        assert_eq!(s.list_rooms().unwrap().len(), 1);
        let log = s.audit_log(2).unwrap();
        assert_eq!(log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["a1", "a2"]);
        assert!(s.delete_room("r1").unwrap());
        assert!(!s.delete_room("r1").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
