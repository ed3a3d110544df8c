//! Socket setup with socket2: options are set before the sockets are handed
//! to mio.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use super::SpawnError;

fn io(op: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> SpawnError {
    move |error| SpawnError::Io { op, addr, error }
}

/// Backlog of an instance's TCP listener.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds an instance's TCP listener and UDP socket on `addr`, both with
/// SO_REUSEADDR and non-blocking. With port 0 the listener picks the port
/// and the UDP socket binds the same one (memberlist's order). The UDP
/// receive buffer is `recv_buffer` bytes, halved until the OS accepts it.
pub(super) fn bind(
    addr: SocketAddr,
    recv_buffer: usize,
) -> Result<(mio::net::TcpListener, mio::net::UdpSocket, SocketAddr), SpawnError> {
    let domain = Domain::for_address(addr);

    let tcp =
        Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(io("socket tcp", addr))?;
    tcp.set_reuse_address(true).map_err(io("setsockopt tcp", addr))?;
    tcp.set_nonblocking(true).map_err(io("setsockopt tcp", addr))?;
    tcp.bind(&addr.into()).map_err(io("bind tcp", addr))?;
    tcp.listen(LISTEN_BACKLOG).map_err(io("listen tcp", addr))?;
    let bound =
        tcp.local_addr().ok().and_then(|a| a.as_socket()).ok_or_else(|| SpawnError::Io {
            op: "getsockname tcp",
            addr,
            error: std::io::Error::other("not an inet address"),
        })?;

    let udp =
        Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(io("socket udp", bound))?;
    udp.set_reuse_address(true).map_err(io("setsockopt udp", bound))?;
    udp.set_nonblocking(true).map_err(io("setsockopt udp", bound))?;
    let mut size = recv_buffer;
    while size > 0 && udp.set_recv_buffer_size(size).is_err() {
        size /= 2;
    }
    udp.bind(&bound.into()).map_err(io("bind udp", bound))?;

    let listener = mio::net::TcpListener::from_std(tcp.into());
    let udp = mio::net::UdpSocket::from_std(udp.into());
    Ok((listener, udp, bound))
}
