//! The DTLS certificate a worker's peers present.
//!
//! str0m gives every `Rtc` a certificate of its own unless it is handed one: an ECDSA P-256
//! key generated and a certificate signed on the worker thread at every join, while that
//! thread forwards everyone else's media. mediasoup (one per worker) and Janus (one per
//! process) share one instead; a peer's identity in WebRTC is the fingerprint its SDP
//! carries, and any number of peers may carry the same one. A worker makes one at start and
//! a new one each day (the certificate is valid a year); a peer keeps the one it began with.

use std::time::{Duration, Instant};

use str0m::config::DtlsCert;

/// How long a worker presents one certificate before it makes the next.
pub const RENEW_AFTER: Duration = Duration::from_secs(24 * 3600);

pub struct DtlsIdentity {
    /// The certificate and when it was made; `None` if the crypto provider could not make
    /// one (peers then make their own, as str0m does unasked).
    current: Option<(DtlsCert, Instant)>,
}

impl DtlsIdentity {
    pub fn new(now: Instant) -> Self {
        DtlsIdentity { current: generate().map(|c| (c, now)) }
    }

    /// The certificate for a peer starting at `now`: the current one, renewed if it is older
    /// than [`RENEW_AFTER`].
    pub fn for_peer(&mut self, now: Instant) -> Option<DtlsCert> {
        let stale = self.current.as_ref().is_none_or(|(_, made)| now.saturating_duration_since(*made) >= RENEW_AFTER);
        if stale {
            if let Some(fresh) = generate() {
                self.current = Some((fresh, now));
            }
        }
        self.current.as_ref().map(|(c, _)| c.clone())
    }
}

fn generate() -> Option<DtlsCert> {
    str0m::crypto::from_feature_flags().dtls_provider.generate_certificate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(c: &Option<DtlsCert>) -> Vec<u8> {
        c.as_ref().expect("a certificate").certificate.clone()
    }

    #[test]
    fn peers_of_a_day_share_one_certificate_then_it_is_renewed() {
        let start = Instant::now();
        let mut id = DtlsIdentity::new(start);
        let first = id.for_peer(start);
        let later = id.for_peer(start + RENEW_AFTER - Duration::from_secs(1));
        assert_eq!(der(&first), der(&later));
        let next_day = id.for_peer(start + RENEW_AFTER);
        assert_ne!(der(&first), der(&next_day));
        assert_eq!(der(&next_day), der(&id.for_peer(start + RENEW_AFTER + Duration::from_secs(60))));
    }
}
