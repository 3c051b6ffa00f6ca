//! How a child proves to its parent that it may join the cascade: a short-lived token signed
//! with the secret the two share (HMAC-SHA256), naming the child. The secret never crosses
//! the wire; a captured token is good for `TTL` only.
//!
//! Format: `v1.<node>.<expiry unix seconds>.<hex HMAC-SHA256(secret, "v1.<node>.<expiry>")>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cascade::valid_node_name;

/// How long a token is accepted after it was made (the child makes one per dial).
pub const TTL_SECS: u64 = 300;

fn mac(secret: &[u8], body: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(body.as_bytes());
    m
}

pub fn mint(secret: &[u8], node: &str, now_secs: u64) -> String {
    let body = format!("v1.{node}.{}", now_secs + TTL_SECS);
    let sig: String = mac(secret, &body).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{body}.{sig}")
}

/// The node a token names, if it is well formed, signed with `secret` and not expired.
pub fn verify(secret: &[u8], token: &str, now_secs: u64) -> Result<String, &'static str> {
    let mut parts = token.rsplitn(2, '.');
    let (sig, body) = (parts.next().unwrap_or(""), parts.next().ok_or("malformed token")?);
    let mut fields = body.splitn(3, '.');
    let (v, node, expiry) = (fields.next(), fields.next(), fields.next());
    if v != Some("v1") {
        return Err("malformed token");
    }
    let node = node.filter(|n| valid_node_name(n)).ok_or("malformed token")?;
    let expiry: u64 = expiry.and_then(|e| e.parse().ok()).ok_or("malformed token")?;
    if sig.len() != 64 {
        return Err("malformed token");
    }
    let sig: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| "malformed token")?;
    mac(secret, body).verify_slice(&sig).map_err(|_| "bad signature")?;
    if expiry < now_secs || expiry > now_secs + 2 * TTL_SECS {
        return Err("token expired");
    }
    Ok(node.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_node_until_it_expires() {
        let t = mint(b"shared", "county-7", 1000);
        assert_eq!(verify(b"shared", &t, 1000), Ok("county-7".into()));
        assert_eq!(verify(b"shared", &t, 1000 + TTL_SECS), Ok("county-7".into()));
        assert_eq!(verify(b"shared", &t, 1001 + TTL_SECS), Err("token expired"));
        assert_eq!(verify(b"other", &t, 1000), Err("bad signature"));
    }

    #[test]
    fn tampering_is_refused() {
        let t = mint(b"shared", "county", 1000);
        assert_eq!(verify(b"shared", &t.replace("county", "county2"), 1000), Err("bad signature"));
        let later = t.replace(&(1000 + TTL_SECS).to_string(), &(9000 + TTL_SECS).to_string());
        assert_eq!(verify(b"shared", &later, 9000), Err("bad signature"));
        for bad in ["", "v1", "v1.a.b.c", "v2.county.1300.00", "v1.bad name.1300.00", &format!("{t}x")] {
            assert!(verify(b"shared", bad, 1000).is_err(), "{bad}");
        }
    }
}
