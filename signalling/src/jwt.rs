//! HS256 JSON Web Tokens (RFC 7519), just what login needs: sign, and verify signature + expiry.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    BadSignature,
    Expired,
}

#[derive(Clone)]
pub struct JwtKey(Vec<u8>);

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl JwtKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(secret.to_vec())
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(data);
        m
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).expect("claims serialize");
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(body));
        let sig = self.mac(signing_input.as_bytes()).finalize().into_bytes();
        format!("{signing_input}.{}", B64.encode(sig))
    }

    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(b), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header = B64.decode(h).map_err(|_| JwtError::Malformed)?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| JwtError::Malformed)?;
        // Only HS256: never let the token choose "none" or another algorithm.
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::Malformed);
        }
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let signing_input = &token[..h.len() + 1 + b.len()];
        self.mac(signing_input.as_bytes()).verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
        let body = B64.decode(b).map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| JwtError::Malformed)?;
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims { sub: "alice".into(), role: "user".into(), iat: 100, exp }
    }

    #[test]
    fn sign_verify_roundtrip() {
        let k = JwtKey::new(b"secret-key");
        let t = k.sign(&claims(1000));
        assert_eq!(k.verify(&t, 500).unwrap(), claims(1000));
    }

    #[test]
    fn rejects_expired_forged_and_malformed() {
        let k = JwtKey::new(b"secret-key");
        let t = k.sign(&claims(1000));
        assert_eq!(k.verify(&t, 1000), Err(JwtError::Expired));
        assert_eq!(JwtKey::new(b"other").verify(&t, 500), Err(JwtError::BadSignature));
        // Change the body to claim admin: signature no longer matches.
        let parts: Vec<&str> = t.split('.').collect();
        let forged_body = B64.encode(serde_json::to_vec(&Claims { role: "admin".into(), ..claims(1000) }).unwrap());
        assert_eq!(k.verify(&format!("{}.{}.{}", parts[0], forged_body, parts[2]), 500), Err(JwtError::BadSignature));
        let none_header = B64.encode(r#"{"alg":"none"}"#);
        assert_eq!(k.verify(&format!("{}.{}.", none_header, parts[1]), 500), Err(JwtError::Malformed));
        assert_eq!(k.verify("garbage", 500), Err(JwtError::Malformed));
        assert_eq!(k.verify("a.b.c", 500), Err(JwtError::Malformed));
    }
}
