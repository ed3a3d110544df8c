//! Packets and bytes per agent, counted from a packet capture on `lo`: a raw
//! `AF_PACKET` socket (needs CAP_NET_RAW) with a classic BPF filter keeping
//! only UDP/TCP segments to or from the gossip port. Bound to `ETH_P_IP` (not
//! `ETH_P_ALL`), the socket sees each loopback packet once, on its receive
//! side (`PACKET_HOST`); it is attributed to the agent owning its source
//! address, i.e. counted as sent by that agent. Bytes
//! are IP bytes (the IP header's total length), i.e. what the agent put on
//! the wire minus the link header that `lo` does not really have.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Per-agent counters, shared with the capture thread.
pub struct Counters {
    pub packets: Vec<AtomicU64>,
    pub bytes: Vec<AtomicU64>,
}

impl Counters {
    /// (packets, bytes) of every agent now.
    pub fn snapshot(&self) -> Vec<(u64, u64)> {
        self.packets
            .iter()
            .zip(&self.bytes)
            .map(|(p, b)| (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
            .collect()
    }
}

/// A running capture.
pub struct Capture {
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    fd: i32,
}

const ETH_P_IP: u16 = 0x0800;
const PACKET_HOST: u8 = 0;

/// Classic BPF on the cooked (IP-level) packet: accept UDP or TCP, not a
/// later fragment, with source or destination port `port`; keep 64 bytes.
fn filter(port: u16) -> Vec<libc::sock_filter> {
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    // Opcodes (linux/filter.h).
    const LD_B_ABS: u16 = 0x30;
    const LD_H_ABS: u16 = 0x28;
    const LDX_B_MSH: u16 = 0xb1;
    const LD_H_IND: u16 = 0x48;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const RET_K: u16 = 0x06;
    let p = u32::from(port);
    vec![
        ins(LD_B_ABS, 0, 0, 9),    // 0: A = protocol
        ins(JEQ_K, 1, 0, 17),      // 1: UDP → 3
        ins(JEQ_K, 0, 7, 6),       // 2: TCP → 3, else drop
        ins(LD_H_ABS, 0, 0, 6),    // 3: flags + fragment offset
        ins(JSET_K, 5, 0, 0x1fff), // 4: later fragment → drop
        ins(LDX_B_MSH, 0, 0, 0),   // 5: X = IP header length
        ins(LD_H_IND, 0, 0, 0),    // 6: source port
        ins(JEQ_K, 3, 0, p),       // 7: → accept
        ins(LD_H_IND, 0, 0, 2),    // 8: destination port
        ins(JEQ_K, 1, 0, p),       // 9: → accept
        ins(RET_K, 0, 0, 0),       // 10: drop
        ins(RET_K, 0, 0, 64),      // 11: accept 64 bytes
    ]
}

impl Capture {
    /// Starts counting packets whose source is one of `addrs` (agent i =
    /// `addrs[i]`) to or from `port`.
    pub fn start(addrs: &[Ipv4Addr], port: u16) -> Result<Capture, String> {
        let os = || std::io::Error::last_os_error().to_string();
        // SAFETY: plain socket syscalls on a descriptor we own; every
        // pointer passed is to a live local of the stated size.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(ETH_P_IP.to_be())) };
        if fd < 0 {
            return Err(format!("packet socket (needs CAP_NET_RAW): {}", os()));
        }
        let fail = |what: &str| {
            let e = format!("{what}: {}", os());
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(fd) };
            Err(e)
        };
        let prog = filter(port);
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
        let lo = c"lo";
        // SAFETY: see above.
        unsafe {
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                core::mem::size_of::<libc::sock_fprog>() as u32,
            ) != 0
            {
                return fail("attach filter");
            }
            let size: i32 = 64 << 20;
            // FORCE works as root; the plain one is the fallback.
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const i32).cast(),
                4,
            ) != 0
            {
                let _ = libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const i32).cast(),
                    4,
                );
            }
            let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                core::mem::size_of::<libc::timeval>() as u32,
            );
            let ifindex = libc::if_nametoindex(lo.as_ptr());
            if ifindex == 0 {
                return fail("if_nametoindex(lo)");
            }
            let mut sll: libc::sockaddr_ll = core::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_IP.to_be();
            sll.sll_ifindex = ifindex as i32;
            if libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return fail("bind lo");
            }
        }
        let index: HashMap<u32, usize> =
            addrs.iter().enumerate().map(|(i, a)| (u32::from(*a), i)).collect();
        let counters = Arc::new(Counters {
            packets: (0..addrs.len()).map(|_| AtomicU64::new(0)).collect(),
            bytes: (0..addrs.len()).map(|_| AtomicU64::new(0)).collect(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (counters.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || read_loop(fd, &index, &c, &st))
            .map_err(|e| e.to_string())?;
        Ok(Capture { counters, stop, thread: Some(thread), fd })
    }

    /// Packets the kernel dropped for this socket (buffer full) so far; a
    /// non-zero value means the counts are low by about that much.
    pub fn drops(&self) -> u64 {
        let mut st = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
        let mut len = core::mem::size_of::<libc::tpacket_stats>() as u32;
        // SAFETY: getsockopt into a live local of the stated size. Reading
        // resets the kernel's counters, so callers add up the results.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 {
            u64::from(st.tp_drops)
        } else {
            0
        }
    }
}

fn read_loop(fd: i32, index: &HashMap<u32, usize>, c: &Counters, stop: &AtomicBool) {
    let mut buf = [0u8; 64];
    // Bounded by the stop flag, checked at least every 200 ms (SO_RCVTIMEO).
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: zeroed sockaddr_ll is a valid out-parameter.
        let mut from: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        let mut flen = core::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: recvfrom into live buffers of the stated sizes.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut flen,
            )
        };
        if n < 20 || from.sll_pkttype != PACKET_HOST {
            continue;
        }
        let total = u16::from_be_bytes([buf[2], buf[3]]);
        let src = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
        if let Some(&i) = index.get(&src) {
            c.packets[i].fetch_add(1, Ordering::Relaxed);
            c.bytes[i].fetch_add(u64::from(total), Ordering::Relaxed);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: closing our own descriptor after its reader has stopped.
        unsafe { libc::close(self.fd) };
    }
}
