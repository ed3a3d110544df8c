//! Go `net` behaviour the CLI, the agent configuration and the runtime's
//! stream errors must reproduce: `SplitHostPort`, port parsing,
//! `DialTimeout("tcp", …)`, `ResolveTCPAddr`, `InterfaceAddrs`, and the one
//! table of OS error texts as Go's `syscall.Errno` spells them (e.g. `dial
//! tcp 127.0.1.99:1: connect: connection refused`, `address 99999: invalid
//! port`).
//!
//! A leaf crate so that both the runtime (which must not depend on the
//! agent) and the agent and RPC client use the same words.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Go's `net.SplitHostPort`. The error is the text of Go's `AddrError`
/// (`address <hostport>: <reason>`).
pub fn split_host_port(hostport: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| Err(format!("address {hostport}: {why}"));
    let Some(i) = hostport.rfind(':') else { return err("missing port in address") };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else { return err("missing ']' in address") };
        if end + 1 == hostport.len() {
            return err("missing port in address");
        } else if end + 1 != i {
            if hostport.as_bytes().get(end + 1) == Some(&b':') {
                return err("too many colons in address");
            }
            return err("missing port in address");
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return err("too many colons in address");
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hostport[k..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok((host, &hostport[i + 1..]))
}

/// Go's `net.JoinHostPort`: brackets a host that contains a colon.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's port parsing for the "tcp" network: decimal (with an optional sign),
/// or a service name from `/etc/services`. Errors as Go words them.
pub fn parse_port(port: &str) -> Result<u16, String> {
    let digits = port.strip_prefix(['+', '-']).unwrap_or(port);
    let neg = port.starts_with('-');
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Go saturates long numbers; anything outside 0..=65535 is invalid.
        let v: u64 = digits.parse().unwrap_or(u64::MAX);
        return match (neg, u16::try_from(v)) {
            (false, Ok(p)) => Ok(p),
            (true, Ok(0)) => Ok(0),
            _ => Err(format!("address {port}: invalid port")),
        };
    }
    if port.is_empty() {
        return Ok(0);
    }
    lookup_service(port).ok_or_else(|| format!("address tcp/{port}: unknown port"))
}

/// Looks a TCP service name up in `/etc/services` (case-insensitive, like Go).
fn lookup_service(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let (Some(svc), Some(portproto)) = (f.next(), f.next()) else { continue };
        let Some((p, proto)) = portproto.split_once('/') else { continue };
        if proto != "tcp" {
            continue;
        }
        if svc.eq_ignore_ascii_case(name) || f.any(|alias| alias.eq_ignore_ascii_case(name)) {
            return p.parse().ok();
        }
    }
    None
}

/// The first `nameserver` of `/etc/resolv.conf`, as Go names it in lookup
/// errors (`127.0.0.1:53` when there is none).
fn nameserver() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(|ns| join_host_port(ns, "53"))
        .unwrap_or_else(|| "127.0.0.1:53".to_string())
}

/// Resolves `host` the way Go's dialer orders candidates: IP literals as
/// they are, names through the system resolver with IPv4 first.
fn resolve_host(host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let found: Vec<IpAddr> = match (host, 0u16).to_socket_addrs() {
        Ok(it) => it.map(|sa| sa.ip()).collect(),
        Err(_) => Vec::new(),
    };
    if found.is_empty() {
        return Err(format!("lookup {host} on {}: no such host", nameserver()));
    }
    let mut v4: Vec<IpAddr> = found.iter().copied().filter(IpAddr::is_ipv4).collect();
    v4.extend(found.iter().copied().filter(IpAddr::is_ipv6));
    v4.dedup();
    Ok(v4)
}

/// Go's `syscall.Errno` text for the errors a TCP client or listener meets.
/// Others fall back to the C library's message, lower-cased (which is what
/// Go's table holds for them too).
fn known_errno(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::ECONNREFUSED => "connection refused",
        libc::ECONNRESET => "connection reset by peer",
        libc::ECONNABORTED => "software caused connection abort",
        libc::EHOSTUNREACH => "no route to host",
        libc::ENETUNREACH => "network is unreachable",
        libc::ETIMEDOUT => "connection timed out",
        libc::EINVAL => "invalid argument",
        libc::EACCES => "permission denied",
        libc::EPERM => "operation not permitted",
        libc::EADDRNOTAVAIL => "cannot assign requested address",
        libc::EADDRINUSE => "address already in use",
        libc::EPIPE => "broken pipe",
        libc::EAFNOSUPPORT => "address family not supported by protocol",
        libc::EMFILE => "too many open files",
        libc::ENOBUFS => "no buffer space available",
        _ => return None,
    })
}

/// Appends Go's spelling of an OS error to `out` without allocating when
/// `out` has room: the table above, `i/o timeout` for a socket timeout,
/// otherwise the C library's message with a lower-case first letter and no
/// `(os error N)` suffix.
pub fn write_errno_text(e: &io::Error, out: &mut String) {
    use core::fmt::Write as _;
    if let Some(text) = e.raw_os_error().and_then(known_errno) {
        out.push_str(text);
        return;
    }
    // A socket timeout (SO_RCVTIMEO gives EAGAIN) is Go's deadline error.
    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        out.push_str("i/o timeout");
        return;
    }
    let start = out.len();
    let _ = write!(out, "{e}");
    if e.raw_os_error().is_some() {
        if let Some(at) = out.get(start..).and_then(|s| s.rfind(" (os error ")) {
            out.truncate(start + at);
        }
    }
    if let Some(first) = out.get(start..).and_then(|s| s.chars().next()) {
        if first.is_ascii_uppercase() {
            let mut b = [0u8; 4];
            let lower = first.to_ascii_lowercase().encode_utf8(&mut b);
            out.replace_range(start..start + 1, lower);
        }
    }
}

/// [`write_errno_text`] into a new string.
pub fn errno_text(e: &io::Error) -> String {
    let mut s = String::new();
    write_errno_text(e, &mut s);
    s
}

/// Go's text of the dial error for a connect that failed at once, written
/// into `out` (cleared first): `dial tcp R: connect: connection refused`.
pub fn write_dial_error(remote: SocketAddr, e: &io::Error, out: &mut String) {
    use core::fmt::Write as _;
    out.clear();
    let _ = write!(out, "dial tcp {remote}: connect: ");
    write_errno_text(e, out);
}

/// Go's `*os.PathError` text: `open /x/y: no such file or directory`.
pub fn path_error(op: &str, path: &str, e: &io::Error) -> String {
    format!("{op} {path}: {}", errno_text(e))
}

/// One address of a network interface, as `getifaddrs(3)` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The interface's name (`lo`, `eth0`).
    pub name: String,
    /// One of its IPv4 or IPv6 addresses.
    pub ip: IpAddr,
}

/// Every IPv4 and IPv6 address of every interface, in the kernel's order
/// (Go's `net.Interfaces` + `Addrs`), or Go's text of the OS error.
pub fn interface_addrs() -> Result<Vec<InterfaceAddr>, String> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = core::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; every node
    // is only read while the list is alive, and sockaddr pointers are cast
    // according to their family.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return Err(errno_text(&io::Error::last_os_error()));
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let ip = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(sa.sin6_addr.s6_addr.into())
                }
                _ => continue,
            };
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            out.push(InterfaceAddr { name, ip });
        }
        libc::freeifaddrs(head);
    }
    Ok(out)
}

/// Go's `net.DialTimeout("tcp", addr, timeout)`. The error is Go's full text,
/// e.g. `dial tcp 127.0.1.99:1: connect: connection refused` or
/// `dial tcp: address bogus: missing port in address`.
pub fn dial_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    if addr.is_empty() {
        return Err("dial tcp: missing address".to_string());
    }
    let (host, port) = split_host_port(addr).map_err(|e| format!("dial tcp: {e}"))?;
    let port = parse_port(port).map_err(|e| format!("dial tcp: {e}"))?;
    let ips = if host.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    } else {
        resolve_host(host).map_err(|e| format!("dial tcp: {e}"))?
    };
    let mut first_err = None;
    for ip in ips {
        let sa = SocketAddr::new(ip, port);
        let shown = if host.is_empty() { format!(":{port}") } else { sa.to_string() };
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                let why = if e.kind() == io::ErrorKind::TimedOut {
                    "i/o timeout".to_string()
                } else {
                    format!("connect: {}", errno_text(&e))
                };
                first_err.get_or_insert(format!("dial tcp {shown}: {why}"));
            }
        }
    }
    Err(first_err.unwrap_or_else(|| format!("dial tcp {addr}: no suitable address found")))
}

/// Go's `net.ResolveTCPAddr("tcp", hostport)`: the IP (unspecified when the
/// host is empty) and port, or Go's error text.
pub fn resolve_tcp_addr(hostport: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(hostport)?;
    let port = parse_port(port)?;
    let ip = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        *resolve_host(host)?.first().ok_or_else(|| format!("lookup {host}: no such host"))?
    };
    Ok(SocketAddr::new(ip, port))
}

/// Go's `net.IP.String()` of raw address bytes: dotted quad for 4 bytes
/// and IPv4-mapped 16 bytes, RFC 5952 text for other 16-byte addresses,
/// `<nil>` for none, `?` + hex for any other length.
pub fn ip_string(b: &[u8]) -> String {
    match b.len() {
        0 => "<nil>".to_string(),
        4 => format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]),
        16 if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff => {
            format!("{}.{}.{}.{}", b[12], b[13], b[14], b[15])
        }
        16 => {
            let groups: Vec<u16> = b.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            // The longest run (first on ties) of at least two zero groups.
            let (mut best_start, mut best_len) = (usize::MAX, 1);
            let mut i = 0;
            while i < 8 {
                let run = groups[i..].iter().take_while(|&&g| g == 0).count();
                if run > best_len {
                    best_start = i;
                    best_len = run;
                }
                i += run.max(1);
            }
            let mut out = String::new();
            let mut i = 0;
            while i < 8 {
                if i == best_start {
                    out.push_str("::");
                    i += best_len;
                    continue;
                }
                if !out.is_empty() && !out.ends_with(':') {
                    out.push(':');
                }
                out.push_str(&format!("{:x}", groups[i]));
                i += 1;
            }
            out
        }
        _ => format!("?{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

/// Go's `net.TCPAddr{IP, Port}.String()`: `ip:port`, `[v6]:port`, and
/// `:port` when there is no IP.
pub fn tcp_addr_string(ip: &[u8], port: u16) -> String {
    let host = if ip.is_empty() { String::new() } else { ip_string(ip) };
    join_host_port(&host, &port.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_like_go() {
        assert_eq!(split_host_port("127.0.0.1:7373"), Ok(("127.0.0.1", "7373")));
        assert_eq!(split_host_port("[::1]:7946"), Ok(("::1", "7946")));
        assert_eq!(split_host_port(":1"), Ok(("", "1")));
        assert_eq!(
            split_host_port("bogus"),
            Err("address bogus: missing port in address".to_string())
        );
        assert_eq!(
            split_host_port("a:b:c"),
            Err("address a:b:c: too many colons in address".to_string())
        );
        assert_eq!(
            split_host_port("::1"),
            Err("address ::1: too many colons in address".to_string())
        );
        assert_eq!(
            split_host_port("[::1]"),
            Err("address [::1]: missing port in address".to_string())
        );
        assert_eq!(
            split_host_port("[::1"),
            Err("address [::1: missing ']' in address".to_string())
        );
    }

    #[test]
    fn ports_like_go() {
        assert_eq!(parse_port("7946"), Ok(7946));
        assert_eq!(parse_port("99999"), Err("address 99999: invalid port".to_string()));
        assert_eq!(parse_port("-1"), Err("address -1: invalid port".to_string()));
        assert_eq!(parse_port("abc"), Err("address tcp/abc: unknown port".to_string()));
        assert_eq!(parse_port(""), Ok(0));
    }

    #[test]
    fn ip_strings_like_go() {
        assert_eq!(tcp_addr_string(&[127, 0, 1, 1], 7946), "127.0.1.1:7946");
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(tcp_addr_string(&mapped, 1), "10.0.0.1:1");
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(tcp_addr_string(&v6, 7946), "[::1]:7946");
        let v6b = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        assert_eq!(ip_string(&v6b), "2001:db8::1:0:0:1");
        assert_eq!(ip_string(&[0u8; 16]), "::");
        assert_eq!(tcp_addr_string(&[], 5), ":5");
        assert_eq!(ip_string(&[1, 2]), "?0102");
    }

    #[test]
    fn errno_texts_match_go() {
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            "connection refused"
        );
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::ECONNRESET)),
            "connection reset by peer"
        );
        // Not in the table: the C library's words, lower-cased, no suffix.
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::ENOENT)),
            "no such file or directory"
        );
        assert_eq!(errno_text(&io::Error::from(io::ErrorKind::TimedOut)), "i/o timeout");
        let mut s = String::from("stale");
        let addr: SocketAddr = "127.0.1.9:7946".parse().unwrap();
        write_dial_error(addr, &io::Error::from_raw_os_error(libc::ECONNREFUSED), &mut s);
        assert_eq!(s, "dial tcp 127.0.1.9:7946: connect: connection refused");
    }

    #[test]
    fn loopback_is_listed() {
        let addrs = interface_addrs().unwrap();
        assert!(addrs.iter().any(|a| a.name == "lo" && a.ip == Ipv4Addr::LOCALHOST), "{addrs:?}");
    }

    #[test]
    fn dial_errors_like_go() {
        assert_eq!(dial_tcp("", Duration::from_secs(1)).unwrap_err(), "dial tcp: missing address");
        assert_eq!(
            dial_tcp("127.0.0.1", Duration::from_secs(1)).unwrap_err(),
            "dial tcp: address 127.0.0.1: missing port in address"
        );
        assert_eq!(
            dial_tcp("127.0.0.1:99999", Duration::from_secs(1)).unwrap_err(),
            "dial tcp: address 99999: invalid port"
        );
        // Port 1 on a loopback address nobody listens on.
        assert_eq!(
            dial_tcp("127.0.250.99:1", Duration::from_secs(1)).unwrap_err(),
            "dial tcp 127.0.250.99:1: connect: connection refused"
        );
    }
}
