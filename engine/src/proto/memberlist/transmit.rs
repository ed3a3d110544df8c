//! Outgoing datagrams (`protocol/memberlist.md` §5.1, §5.4).
//!
//! Sends are queued as small descriptors and built when the caller polls,
//! so piggybacked broadcasts are chosen at the last moment, as Go does:
//!
//! * ping, ack, nack, indirect ping: the message first, then broadcasts
//!   within `UDPBufferSize − len − 2` (− encryption overhead); no CRC;
//! * the ping to a suspect: `compound[ping, suspect]`, CRC if the target
//!   speaks protocol 5, nothing piggybacked;
//! * gossip: broadcasts only within `UDPBufferSize − 2` (− encryption
//!   overhead), bare if one, compound if several, CRC if the target speaks
//!   protocol 5; skipped if there is nothing to say;
//! * user packets (Serf's direct replies): `0x08 | body`, nothing added.
//!
//! memberlist's own queue is drained before the delegate's, and each
//! delegate message costs one more byte (its `0x08` type).

use std::net::SocketAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::{Delegate, Memberlist, Scratch, Transmit};
use crate::wire::crypto::ENCRYPT_OVERHEAD;
use crate::wire::memberlist::{Ack, Body, IndirectPing, MessageType, Nack, Ping, Suspect};
use crate::wire::packet::{write_compound, SealOptions, HEADROOM, MAX_COMPOUND_PARTS, PACKET_BUF};

/// Compound header overhead (`0x07` + count).
const COMPOUND_HEADER: usize = 2;
/// Per-part overhead in a compound (the `u16` length).
const COMPOUND_PART: usize = 2;
/// A delegate broadcast also costs its `0x08` type byte.
const USER_MSG_OVERHEAD: usize = 1;
/// Largest ack payload a delegate may produce.
const MAX_ACK_PAYLOAD: usize = 1024;

/// A queued datagram, built on poll.
#[derive(Clone, Debug)]
pub(super) enum Send {
    Ping {
        to: SocketAddr,
        seq: u32,
        node: Arc<str>,
    },
    PingSuspect {
        to: SocketAddr,
        seq: u32,
        node: Arc<str>,
        incarnation: u32,
        crc: bool,
    },
    /// `direct`: an answer to a ping we received (carries the delegate's
    /// payload); otherwise an ack we forward for an indirect probe.
    Ack {
        to: SocketAddr,
        seq: u32,
        direct: bool,
    },
    Nack {
        to: SocketAddr,
        seq: u32,
    },
    IndirectPing {
        to: SocketAddr,
        seq: u32,
        target: SocketAddr,
        node: Arc<str>,
        nack: bool,
    },
    Gossip {
        to: SocketAddr,
        crc: bool,
    },
    User {
        to: SocketAddr,
        slot: u32,
    },
}

impl Memberlist {
    pub(super) fn queue(&mut self, s: Send) {
        if self.shutdown {
            return;
        }
        if self.pending.len() >= self.config.max_pending_sends {
            self.stats.send_queue_full = self.stats.send_queue_full.saturating_add(1);
            if let Send::User { slot, .. } = s {
                self.user_free.push(slot);
            }
            return;
        }
        self.pending.push_back(s);
    }

    /// Queues a user message for `dst` as its own datagram (`0x08 | body`;
    /// Serf's query acks, responses and relays). Empty bodies are ignored.
    pub fn send_user(&mut self, dst: SocketAddr, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let slot = match self.user_free.pop() {
            Some(s) => s,
            None => {
                self.user_slots.push(Vec::new());
                (self.user_slots.len() - 1) as u32
            }
        };
        let buf = &mut self.user_slots[slot as usize];
        buf.clear();
        buf.push(MessageType::User as u8);
        buf.extend_from_slice(body);
        self.queue(Send::User { to: dst, slot });
    }

    /// Builds the next datagram into `buf` (at least [`PACKET_BUF`] bytes)
    /// and returns where to send which bytes. Call until `None` after every
    /// input.
    pub fn poll_transmit(
        &mut self,
        buf: &mut [u8],
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) -> Option<Transmit> {
        debug_assert!(buf.len() >= PACKET_BUF, "poll_transmit needs a PACKET_BUF buffer");
        while let Some(s) = self.pending.pop_front() {
            if let Some(t) = self.build(s, buf, scratch, d) {
                self.stats.datagrams_sent = self.stats.datagrams_sent.saturating_add(1);
                self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(t.range.len() as u64);
                return Some(t);
            }
        }
        None
    }

    /// True if datagrams are waiting for [`Memberlist::poll_transmit`].
    pub fn has_pending_transmit(&self) -> bool {
        !self.pending.is_empty()
    }

    fn encryption_overhead(&self) -> usize {
        if self.keyring.is_some() {
            ENCRYPT_OVERHEAD
        } else {
            0
        }
    }

    fn build(
        &mut self,
        s: Send,
        buf: &mut [u8],
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) -> Option<Transmit> {
        let (src_ip, src_port) = (self.config.advertise_addr, self.config.advertise_port);
        let mut ip = [0u8; 16];
        let ip_len = super::state::ip_octets(&src_ip, &mut ip);
        let source_addr = &ip[..ip_len];
        let parts = &mut scratch.parts[..];
        let (to, first_len, piggyback, crc) = match &s {
            Send::Ping { to, seq, node } => {
                let m = Ping {
                    seq_no: *seq,
                    node,
                    source_addr,
                    source_port: src_port,
                    source_node: &self.name,
                };
                (*to, m.encode_to(parts).ok()?, true, false)
            }
            Send::Ack { to, seq, direct } => {
                let mut payload = [0u8; MAX_ACK_PAYLOAD];
                let n = if *direct { d.ack_payload(&mut payload).min(MAX_ACK_PAYLOAD) } else { 0 };
                let m = Ack { seq_no: *seq, payload: (n > 0).then(|| &payload[..n]) };
                (*to, m.encode_to(parts).ok()?, true, false)
            }
            Send::Nack { to, seq } => {
                (*to, Nack { seq_no: *seq }.encode_to(parts).ok()?, true, false)
            }
            Send::IndirectPing { to, seq, target, node, nack } => {
                let mut tip = [0u8; 16];
                let tlen = super::state::ip_octets(&target.ip(), &mut tip);
                let m = IndirectPing {
                    seq_no: *seq,
                    target: Some(&tip[..tlen]),
                    port: target.port(),
                    node,
                    nack: *nack,
                    source_addr,
                    source_port: src_port,
                    source_node: &self.name,
                };
                (*to, m.encode_to(parts).ok()?, true, false)
            }
            Send::PingSuspect { to, seq, node, incarnation, crc } => {
                let ping = Ping {
                    seq_no: *seq,
                    node,
                    source_addr,
                    source_port: src_port,
                    source_node: &self.name,
                };
                let (a, b) = parts.split_at_mut(parts.len() / 2);
                let la = ping.encode_to(a).ok()?;
                let lb = Suspect { incarnation: *incarnation, node, from: &self.name }
                    .encode_to(b)
                    .ok()?;
                let out = buf.get_mut(HEADROOM..)?;
                let len = write_compound(out, &[&a[..la], &b[..lb]]).ok()?;
                return self.seal(*to, buf, len, *crc, scratch);
            }
            Send::Gossip { to, crc } => (*to, 0, true, *crc),
            Send::User { to, slot } => {
                let slot = *slot;
                let body = &self.user_slots[slot as usize];
                let out = buf.get_mut(HEADROOM..HEADROOM + body.len())?;
                out.copy_from_slice(body);
                let len = body.len();
                self.user_free.push(slot);
                return self.seal(*to, buf, len, false, scratch);
            }
        };
        debug_assert!(piggyback);
        // Collect broadcasts after the first message in the assembly area.
        let enc = self.encryption_overhead();
        let budget = if first_len > 0 {
            self.config.udp_buffer_size.saturating_sub(first_len + COMPOUND_HEADER + enc)
        } else {
            self.config.udp_buffer_size.saturating_sub(COMPOUND_HEADER + enc)
        };
        let mut lens: SmallVec<[usize; 32]> = SmallVec::new();
        if first_len > 0 {
            lens.push(first_len);
        }
        let mut pos = first_len;
        let num_nodes = self.nodes.len();
        let used = self.broadcasts.fill(COMPOUND_PART, budget, num_nodes, |m| {
            let Some(dst) = parts.get_mut(pos..pos + m.len()) else { return false };
            dst.copy_from_slice(m);
            pos += m.len();
            lens.push(m.len());
            lens.len() < MAX_COMPOUND_PARTS
        });
        let avail = budget.saturating_sub(used);
        if avail > COMPOUND_PART + USER_MSG_OVERHEAD && lens.len() < MAX_COMPOUND_PARTS {
            d.get_broadcasts(COMPOUND_PART + USER_MSG_OVERHEAD, avail, &mut |m| {
                if m.is_empty() || lens.len() >= MAX_COMPOUND_PARTS {
                    return false;
                }
                let Some(dst) = parts.get_mut(pos..pos + 1 + m.len()) else { return false };
                dst[0] = MessageType::User as u8;
                dst[1..].copy_from_slice(m);
                pos += 1 + m.len();
                lens.push(1 + m.len());
                lens.len() < MAX_COMPOUND_PARTS
            });
        }
        if lens.is_empty() {
            return None; // gossip with nothing to say
        }
        let out = buf.get_mut(HEADROOM..)?;
        let len = if lens.len() == 1 {
            let n = lens[0];
            out.get_mut(..n)?.copy_from_slice(&parts[..n]);
            n
        } else {
            let mut slices: SmallVec<[&[u8]; 32]> = SmallVec::new();
            let mut at = 0;
            for &l in &lens {
                slices.push(&parts[at..at + l]);
                at += l;
            }
            write_compound(out, &slices).ok()?
        };
        self.seal(to, buf, len, crc, scratch)
    }

    fn seal(
        &mut self,
        to: SocketAddr,
        buf: &mut [u8],
        len: usize,
        crc: bool,
        scratch: &mut Scratch,
    ) -> Option<Transmit> {
        let mut nonce = [0u8; 12];
        if self.keyring.is_some() {
            self.rng.fill(&mut nonce);
        }
        let opts = SealOptions { compress: self.config.enable_compression, crc };
        match scratch.codec.seal(buf, len, opts, self.keyring.as_ref(), nonce) {
            Ok(range) => Some(Transmit { dst: to, range }),
            Err(_) => {
                self.stats.malformed = self.stats.malformed.saturating_add(1);
                None
            }
        }
    }
}
