//! Batched UDP for the media worker: many datagrams per system call. `recvmmsg` takes up to
//! `RECV_BATCH` waiting datagrams at once; outgoing ones are collected while a batch of input
//! is handled and leave with `sendmmsg`. Before this, each datagram cost a `setsockopt` (the
//! read timeout) and a `recvfrom`, and each packet to each subscriber a `sendto`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Datagrams taken per `recvmmsg`.
pub const RECV_BATCH: usize = 32;
/// Datagrams sent per `sendmmsg` (and the most waiting before a flush).
pub const SEND_BATCH: usize = 64;
/// Largest datagram we accept (bigger is truncated and dropped by str0m as malformed).
pub const RECV_BUF: usize = 2048;

fn to_storage(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large and aligned enough for either family.
    unsafe {
        let mut s: libc::sockaddr_storage = zeroed();
        match addr {
            SocketAddr::V4(a) => {
                let sin = &mut *(&mut s as *mut _ as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
                (s, size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(&mut s as *mut _ as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
                sin6.sin6_scope_id = a.scope_id();
                (s, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }
}

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the family field says which layout the kernel wrote.
    unsafe {
        match s.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = &*(s as *const _ as *const libc::sockaddr_in);
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let a = &*(s as *const _ as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Linux's UDP_SEGMENT socket option (linux/udp.h): the size of each datagram in a GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams in one GSO send, and most bytes (the kernel's limits are 64 and 64 KiB).
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;

/// Outgoing datagrams waiting for one `sendmmsg`. Buffers are str0m's own (moved, not copied),
/// and go back to it once sent (`str0m::net::recycle_datagram`).
///
/// A run of datagrams to one destination, all of one size but the last (a frame's packets to
/// one subscriber), leaves as one UDP GSO message: the kernel walks its stack once for the run
/// and cuts it into datagrams at the end. Where GSO fails (an old kernel, a device without it)
/// the batch falls back to one message per datagram for good.
pub struct SendBatch {
    pending: Vec<(Vec<u8>, SocketAddr)>,
    /// Datagrams the kernel refused (counted, never retried: RTP has its own repair).
    pub failed: u64,
    gso: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch { pending: Vec::new(), failed: 0, gso: true }
    }
}

/// One message of a flush: `count` datagrams from `start`, GSO-cut at `segment` if `count > 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message {
    start: usize,
    count: usize,
    segment: usize,
}

/// Group datagrams into messages: a run to one destination of equal sizes (the last may be
/// shorter) within the GSO limits is one message.
fn group(pending: &[(Vec<u8>, SocketAddr)], gso: bool) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for (i, (data, to)) in pending.iter().enumerate() {
        if let Some(m) = out.last_mut().filter(|_| gso) {
            let (first, dest) = (&pending[m.start].0, pending[m.start].1);
            let last = &pending[m.start + m.count - 1].0;
            let fits = dest == *to
                && last.len() == m.segment
                && data.len() <= m.segment
                && m.count < GSO_MAX_SEGMENTS
                && (m.count + 1) * first.len() <= GSO_MAX_BYTES;
            if fits {
                m.count += 1;
                continue;
            }
        }
        out.push(Message { start: i, count: 1, segment: data.len() });
    }
    out
}

impl SendBatch {
    pub fn push(&mut self, socket: &UdpSocket, data: Vec<u8>, to: SocketAddr) {
        self.pending.push((data, to));
        if self.pending.len() >= SEND_BATCH {
            self.flush(socket);
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Send everything waiting; returns how many datagrams left.
    pub fn flush(&mut self, socket: &UdpSocket) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let n = self.pending.len();
        let messages = group(&self.pending, self.gso);
        let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
            messages.iter().map(|m| to_storage(&self.pending[m.start].1)).collect();
        let mut iovs: Vec<libc::iovec> = self
            .pending
            .iter()
            .map(|(d, _)| libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() })
            .collect();
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        let mut controls = vec![0u8; space * messages.len()];
        // SAFETY: zeroed mmsghdr is valid; every pointer refers to the vectors above, which
        // outlive the system calls; each control buffer is CMSG_SPACE(2) bytes of its own.
        let mut msgs: Vec<libc::mmsghdr> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| unsafe {
                let mut h: libc::mmsghdr = zeroed();
                h.msg_hdr.msg_name = &mut addrs[i].0 as *mut _ as *mut libc::c_void;
                h.msg_hdr.msg_namelen = addrs[i].1;
                h.msg_hdr.msg_iov = &mut iovs[m.start];
                h.msg_hdr.msg_iovlen = m.count;
                if m.count > 1 {
                    let control = &mut controls[i * space..(i + 1) * space];
                    h.msg_hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                    h.msg_hdr.msg_controllen = space;
                    let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, m.segment as u16);
                }
                h
            })
            .collect();
        let mut done = 0;
        while done < msgs.len() {
            // SAFETY: msgs[done..] are initialised mmsghdrs.
            let r =
                unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs[done..].as_mut_ptr(), (msgs.len() - done) as u32, 0) };
            if r >= 0 {
                done += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let m = messages[done];
            if m.count > 1 && self.gso {
                // GSO refused: never again; send this run's datagrams one by one.
                self.gso = false;
                for (data, to) in &self.pending[m.start..m.start + m.count] {
                    if socket.send_to(data, to).is_err() {
                        self.failed += 1;
                    }
                }
            } else {
                // This datagram cannot go (e.g. an unreachable destination): skip it, go on.
                self.failed += m.count as u64;
            }
            done += 1;
        }
        // Sent buffers go back to str0m, which encrypts the next packets into them instead
        // of a new allocation each (this thread polls the peers that made them).
        for (data, _) in self.pending.drain(..) {
            str0m::net::recycle_datagram(data);
        }
        n
    }
}

/// Buffers for one `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<[u8; RECV_BUF]>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0u8; RECV_BUF]; RECV_BATCH],
            // SAFETY: plain data.
            addrs: vec![unsafe { zeroed() }; RECV_BATCH],
            lens: vec![0; RECV_BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// Take what is waiting, without blocking; returns how many datagrams.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut libc::c_void, iov_len: RECV_BUF })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..RECV_BATCH)
            .map(|i| unsafe {
                // SAFETY: as in SendBatch::flush; the kernel writes into bufs and addrs.
                let mut m: libc::mmsghdr = zeroed();
                m.msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                m.msg_hdr.msg_iov = &mut iovs[i];
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: msgs are initialised; MSG_DONTWAIT returns at once when nothing waits.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                RECV_BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = r as usize;
        for (len, m) in self.lens.iter_mut().zip(&msgs).take(self.count) {
            // A datagram bigger than the buffer is flagged truncated: report its real length
            // clipped, the caller drops what str0m cannot parse.
            *len = (m.msg_len as usize).min(RECV_BUF);
        }
        Ok(self.count)
    }

    /// Datagram `i` of the last `recv`: its bytes and sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        Some((&self.bufs[i][..self.lens[i]], from_storage(&self.addrs[i])?))
    }
}

/// Wait until the socket is readable or `timeout` passes (microsecond precision: str0m's
/// timers are finer than poll's milliseconds).
pub fn wait_readable(socket: &UdpSocket, timeout: Duration) {
    let mut pfd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ts =
        libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
    // SAFETY: one valid pollfd and timespec; no signal mask change.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

/// Ask for `bytes` of receive and send buffer on the media socket; returns what the kernel
/// granted (it doubles the figure for bookkeeping, and caps it at net.core.rmem_max/wmem_max
/// unless we may force it). A publisher's keyframe arriving while the worker fans out the
/// previous one must fit: with Linux's default 208 KiB a 30-person meeting overflowed.
pub fn grow_buffers(socket: &UdpSocket, bytes: usize) -> (usize, usize) {
    let fd = socket.as_raw_fd();
    let set = |opt: libc::c_int, v: libc::c_int| {
        // SAFETY: valid fd and a c_int option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &v as *const _ as *const libc::c_void,
                size_of::<libc::c_int>() as u32,
            )
        }
    };
    let get = |opt: libc::c_int| {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, out-pointers of the right size.
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, &mut v as *mut _ as *mut libc::c_void, &mut len) };
        v.max(0) as usize
    };
    let want = bytes.min(i32::MAX as usize) as libc::c_int;
    for (force, normal) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        // FORCE works with CAP_NET_ADMIN; otherwise the capped request stands.
        if set(force, want) < 0 {
            set(normal, want);
        }
    }
    (get(libc::SO_RCVBUF), get(libc::SO_SNDBUF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_in_one_call_and_comes_in_in_one_call() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("[::1]:0").ok();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::default();
        for i in 0..10u8 {
            out.push(&a, vec![i; 100 + i as usize], to);
        }
        assert!(!out.is_empty());
        assert_eq!(out.flush(&a), 10);
        assert!(out.is_empty());
        assert_eq!(out.flush(&a), 0);
        wait_readable(&b, Duration::from_millis(200));
        let mut inb = RecvBatch::default();
        assert_eq!(inb.recv(&b).unwrap(), 10);
        for i in 0..10u8 {
            let (data, from) = inb.get(i as usize).unwrap();
            assert_eq!((data.len(), data[0], from), (100 + i as usize, i, a.local_addr().unwrap()));
        }
        assert!(inb.get(10).is_none());
        // Nothing left: no block, WouldBlock.
        assert_eq!(inb.recv(&b).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // An IPv6 destination from an IPv4 socket fails; the batch counts it and goes on.
        if let Some(c) = c {
            out.push(&a, vec![1], c.local_addr().unwrap());
            out.push(&a, vec![2], to);
            assert_eq!(out.flush(&a), 2);
            assert_eq!(out.failed, 1);
            wait_readable(&b, Duration::from_millis(200));
            assert_eq!(inb.recv(&b).unwrap(), 1);
            assert_eq!(inb.get(0).unwrap().0, &[2]);
        }
    }

    #[test]
    fn runs_to_one_destination_of_one_size_are_one_gso_message() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let p = |n: usize, to| (vec![0u8; n], to);
        // a frame to a (3 full + a short last), one packet to b, then two more to a.
        let pending = vec![p(1200, a), p(1200, a), p(1200, a), p(700, a), p(1200, b), p(900, a), p(900, a)];
        let m = group(&pending, true);
        assert_eq!(
            m,
            vec![
                Message { start: 0, count: 4, segment: 1200 },
                Message { start: 4, count: 1, segment: 1200 },
                Message { start: 5, count: 2, segment: 900 },
            ]
        );
        // Nothing follows a short datagram in its run; a bigger one starts a new run.
        let m = group(&[p(500, a), p(400, a), p(400, a), p(600, a)], true);
        assert_eq!(m.iter().map(|m| m.count).collect::<Vec<_>>(), vec![2, 1, 1]);
        // Without GSO every datagram is its own message.
        assert_eq!(group(&pending, false).len(), pending.len());
        // At most 64 segments and 65 000 bytes in one message.
        let many: Vec<_> = (0..100).map(|_| p(100, a)).collect();
        assert_eq!(group(&many, true).iter().map(|m| m.count).collect::<Vec<_>>(), vec![64, 36]);
        let big: Vec<_> = (0..60).map(|_| p(1400, a)).collect();
        assert_eq!(group(&big, true)[0].count, 46);
    }

    #[test]
    fn gso_runs_arrive_as_the_datagrams_they_were() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = SendBatch::default();
        let sizes = [1200usize, 1200, 1200, 333];
        for (i, n) in sizes.iter().enumerate() {
            out.push(&a, vec![i as u8; *n], b.local_addr().unwrap());
        }
        out.push(&a, vec![9; 50], c.local_addr().unwrap());
        out.push(&a, vec![7; 1200], b.local_addr().unwrap());
        assert_eq!(out.flush(&a), 6);
        assert_eq!(out.failed, 0);
        wait_readable(&b, Duration::from_millis(200));
        let mut inb = RecvBatch::default();
        assert_eq!(inb.recv(&b).unwrap(), 5);
        let got: Vec<(usize, u8)> = (0..5).map(|i| inb.get(i).map(|(d, _)| (d.len(), d[0])).unwrap()).collect();
        assert_eq!(got, vec![(1200, 0), (1200, 1), (1200, 2), (333, 3), (1200, 7)]);
        wait_readable(&c, Duration::from_millis(200));
        assert_eq!(inb.recv(&c).unwrap(), 1);
        assert_eq!(inb.get(0).unwrap().0, &[9u8; 50][..]);
    }

    #[test]
    fn pushing_past_the_batch_size_flushes() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = SendBatch::default();
        for _ in 0..SEND_BATCH {
            out.push(&a, vec![0; 10], b.local_addr().unwrap());
        }
        assert!(out.is_empty(), "a full batch leaves at once");
    }
}
