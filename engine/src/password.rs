//! Password hashing (Argon2id) and the weak-password policy.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_PASSWORD_LEN: usize = 10;

/// Passwords that pass the length rule but are still guessed first.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "password123",
    "password1234",
    "passw0rd123",
    "qwertyuiop",
    "qwerty12345",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "admin12345",
    "administrator",
    "letmein123",
    "iloveyou123",
    "abc1234567",
    "aaaaaaaaaa",
    "1111111111",
    "0000000000",
    "welcome123",
    "changeme123",
    "yunshi12345",
    "admin@123456",
    "p@ssw0rd123",
    "zxcvbnm123",
    "asdfghjkl1",
];

#[derive(Debug, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort,
    TooCommon,
}

impl std::fmt::Display for PasswordProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordProblem::TooShort => {
                write!(f, "password must be at least {MIN_PASSWORD_LEN} characters")
            }
            PasswordProblem::TooCommon => write!(f, "password is too common"),
        }
    }
}

pub fn check_strength(password: &str) -> Result<(), PasswordProblem> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordProblem::TooShort);
    }
    let lower = password.to_lowercase();
    let one_char = lower.chars().all(|c| lower.starts_with(c));
    if one_char || COMMON.contains(&lower.as_str()) {
        return Err(PasswordProblem::TooCommon);
    }
    Ok(())
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default params cannot fail")
        .to_string()
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A random password for the first admin when none is configured.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_roundtrip() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn weak_passwords_rejected() {
        assert_eq!(check_strength("short"), Err(PasswordProblem::TooShort));
        assert_eq!(check_strength("Password123"), Err(PasswordProblem::TooCommon));
        assert_eq!(check_strength("zzzzzzzzzzzz"), Err(PasswordProblem::TooCommon));
        assert!(check_strength("tall-river-stone-7").is_ok());
        assert!(check_strength(&generate()).is_ok());
    }
}

/// Argon2id runs on one dedicated thread. Each hash touches 19 MiB; run on the async runtime's
/// blocking pool, every pool thread kept its own 19 MiB malloc arena, which showed up as ~20 MB
/// of server memory per user who logged in. One thread keeps one.
mod worker {
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::LazyLock;

    use tokio::sync::oneshot;

    pub enum Job {
        Hash(String, oneshot::Sender<String>),
        Verify(String, String, oneshot::Sender<bool>),
    }

    pub static JOBS: LazyLock<SyncSender<Job>> = LazyLock::new(|| {
        let (tx, rx) = sync_channel::<Job>(256);
        std::thread::Builder::new()
            .name("password".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Hash(pw, reply) => {
                            let _ = reply.send(super::hash(&pw));
                        }
                        Job::Verify(pw, phc, reply) => {
                            let _ = reply.send(super::verify(&pw, &phc));
                        }
                    }
                }
            })
            .expect("spawn password thread");
        tx
    });
}

/// Hash on the password thread.
pub async fn hash_async(password: String) -> Option<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    worker::JOBS.send(worker::Job::Hash(password, tx)).ok()?;
    rx.await.ok()
}

/// Verify on the password thread. `false` also when the thread is unavailable.
pub async fn verify_async(password: String, phc: String) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if worker::JOBS.send(worker::Job::Verify(password, phc, tx)).is_err() {
        return false;
    }
    rx.await.unwrap_or(false)
}
