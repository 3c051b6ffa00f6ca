//! Receiving a datagram with the kernel's arrival time (SO_TIMESTAMPNS): latency is measured to
//! when the packet reached this machine's socket, not to when the tool got round to it, so a
//! busy load tool does not show up as server latency.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

pub fn enable_timestamps(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid fd, pointer to a c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram: its length, sender and kernel arrival time (None if the kernel gave none).
pub fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<SystemTime>)> {
    // SAFETY: all structures are zeroed plain C data; iov/name/control point into live
    // buffers of the sizes given; the kernel writes within them.
    unsafe {
        let mut addr: libc::sockaddr_storage = zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let mut control = [0u8; 64];
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = &mut addr as *mut _ as *mut libc::c_void;
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
        let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut at = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                at = Some(SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        let from = match addr.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = &*(&addr as *const _ as *const libc::sockaddr_in);
                SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                ))
            }
            libc::AF_INET6 => {
                let a = &*(&addr as *const _ as *const libc::sockaddr_in6);
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                ))
            }
            _ => return Err(io::Error::other("datagram from an unknown address family")),
        };
        Ok((n as usize, from, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_with_sender_and_kernel_time() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(&b).unwrap();
        // The kernel turns receive stamping on with a deferred static-key flip: until then it
        // stamps at read time. Long-lived sockets never see this; give the switch a moment.
        std::thread::sleep(Duration::from_millis(100));
        let mut buf = [0u8; 64];
        assert_eq!(recv(&b, &mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let before = SystemTime::now();
        a.send_to(b"hello", b.local_addr().unwrap()).unwrap();
        // Loopback delivers during send_to: the stamp is taken before this returns.
        let sent = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        let (n, from, at) = recv(&b, &mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"hello"[..], a.local_addr().unwrap()));
        let at = at.expect("kernel timestamp");
        // Stamped on arrival, not when read 20 ms later.
        assert!(at >= before && at <= sent, "{at:?} not within [{before:?}, {sent:?}]");
    }
}
