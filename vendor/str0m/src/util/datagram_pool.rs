//! yunshi: spare buffers for outgoing SRTP datagrams, one pool per thread.
//!
//! Every RTP packet str0m sends is encrypted into a new `Vec` that leaves in a
//! [`Transmit`](crate::net::Transmit) and is freed once the application has sent it. For an
//! SFU that is a malloc and a free per packet per receiver, of a size (1 200–1 500 bytes)
//! beyond glibc's per-thread cache: `_int_malloc` alone was 1.5 % of a 100-viewer webinar's
//! profile. An application that hands sent buffers back with [`recycle_datagram`] on the
//! thread that polls its `Rtc`s gets them again for the next packets; one that does not
//! loses nothing (buffers are allocated as before).

use std::cell::RefCell;

/// Buffers are made this large, so that any RTP datagram fits a recycled one.
const CAPACITY: usize = 1500;

/// At most this many spare buffers per thread (a send batch's worth, and more).
const KEEP: usize = 256;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` zero bytes, recycled if the thread has one.
pub(crate) fn zeroed(len: usize) -> Vec<u8> {
    let spare = SPARE.with(|s| s.borrow_mut().pop());
    let mut buf = spare.unwrap_or_else(|| Vec::with_capacity(len.max(CAPACITY)));
    buf.clear();
    buf.resize(len, 0);
    buf
}

/// Hand back the contents of a sent [`Transmit`](crate::net::Transmit), for str0m to reuse
/// for a later datagram polled on this thread. Buffers str0m did not make may be given too;
/// those too small for a datagram, and any beyond the pool's size, are dropped.
pub fn recycle_datagram(buf: Vec<u8>) {
    if buf.capacity() < CAPACITY {
        return;
    }
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < KEEP {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_recycled_buffer_is_used_again_and_zeroed() {
        let mut first = zeroed(1200);
        assert_eq!(first.len(), 1200);
        first.iter_mut().for_each(|b| *b = 0xaa);
        let ptr = first.as_ptr();
        recycle_datagram(first);
        let second = zeroed(1100);
        assert_eq!(second.as_ptr(), ptr, "the same allocation");
        assert_eq!(second.len(), 1100);
        assert!(second.iter().all(|b| *b == 0));
    }

    #[test]
    fn small_buffers_and_a_full_pool_are_not_kept() {
        recycle_datagram(Vec::with_capacity(100));
        assert_eq!(SPARE.with(|s| s.borrow().len()), 0);
        for _ in 0..KEEP + 10 {
            recycle_datagram(Vec::with_capacity(CAPACITY));
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), KEEP);
    }
}
