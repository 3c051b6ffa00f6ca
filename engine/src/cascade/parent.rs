//! The parent this node joins when it is set through the API (`PUT /api/v1/cascade/parent`,
//! `DELETE` for none): kept in the store, so a restart keeps it, and from then on it takes the
//! place of the configuration's `cascade_parent`.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreResult};

const SETTING: &str = "cascade_parent";

/// `url: None` is "no parent", set on purpose (the configuration's is then not used either).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredParent {
    pub url: Option<String>,
    /// The shared secret the link tokens are signed with. Kept as the configuration keeps it:
    /// it must be presented, so it cannot be hashed; the store is the node's own.
    pub secret: Option<String>,
}

/// What the API set last, if it ever did. An unreadable record counts as never set (and is
/// logged): the configuration then applies.
pub fn load(store: &dyn Store) -> Option<StoredParent> {
    let raw = match store.get_setting(SETTING) {
        Ok(raw) => raw?,
        Err(e) => {
            tracing::warn!("cascade parent setting: {e}");
            return None;
        }
    };
    serde_json::from_slice(&raw).map_err(|e| tracing::warn!("cascade parent setting unreadable: {e}")).ok()
}

pub fn save(store: &dyn Store, parent: &StoredParent) -> StoreResult<()> {
    let raw = serde_json::to_vec(parent).expect("plain strings serialise");
    store.put_setting(SETTING, &raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[test]
    fn a_parent_set_through_the_api_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("yunshi-parent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = SledStore::open(&dir).unwrap();
            assert_eq!(load(&store), None, "never set: the configuration applies");
            let p = StoredParent { url: Some("http://10.0.0.1:8080".into()), secret: Some("s3cret".into()) };
            save(&store, &p).unwrap();
            assert_eq!(load(&store), Some(p));
            save(&store, &StoredParent::default()).unwrap();
        }
        let store = SledStore::open(&dir).unwrap();
        assert_eq!(load(&store), Some(StoredParent::default()), "none, on purpose");
        store.put_setting(SETTING, b"{not json").unwrap();
        assert_eq!(load(&store), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
