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

use super::{Delegate, IpOctets, Memberlist, Scratch, Transmit};
use wire::crypto::ENCRYPT_OVERHEAD;
use wire::memberlist::{Ack, Body, IndirectPing, MessageType, Nack, Ping, Suspect};
use wire::packet::{write_compound, SealOptions, HEADROOM, MAX_COMPOUND_PARTS, PACKET_BUF};

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
        let Some(buf) = self.user_slots.get_mut(slot as usize) else { return };
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

    /// Builds queued send `s` into `buf` (after [`HEADROOM`]) and seals it;
    /// `None` if there is nothing to send (gossip with nothing to say) or
    /// it could not be built.
    fn build(
        &mut self,
        s: Send,
        buf: &mut [u8],
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) -> Option<Transmit> {
        let parts = &mut scratch.parts[..];
        // Every other datagram leads with at most one message, then
        // piggybacks broadcasts.
        let (to, lead, crc) = match s {
            Send::PingSuspect { to, seq, node, incarnation, crc } => {
                let len = self.build_ping_suspect(seq, &node, incarnation, parts, buf)?;
                return self.seal(to, buf, len, crc, scratch);
            }
            Send::User { to, slot } => {
                let len = self.build_user(slot, buf)?;
                return self.seal(to, buf, len, false, scratch);
            }
            Send::Gossip { to, crc } => (to, 0, crc),
            Send::Ping { to, seq, node } => (to, self.encode_ping(seq, &node, parts)?, false),
            Send::Ack { to, seq, direct } => (to, encode_ack(seq, direct, parts, d)?, false),
            Send::Nack { to, seq } => (to, Nack { seq_no: seq }.encode_to(parts).ok()?, false),
            Send::IndirectPing { to, seq, target, node, nack } => {
                (to, self.encode_indirect_ping(seq, target, &node, nack, parts)?, false)
            }
        };
        let mut lens = SmallVec::new();
        self.piggyback(lead, parts, &mut lens, d);
        let len = assemble(&lens, parts, buf.get_mut(HEADROOM..)?)?;
        self.seal(to, buf, len, crc, scratch)
    }

    fn encode_ping(&self, seq: u32, node: &str, out: &mut [u8]) -> Option<usize> {
        let ip = IpOctets::new(&self.config.advertise_addr);
        let m = Ping {
            seq_no: seq,
            node,
            source_addr: ip.as_slice(),
            source_port: self.config.advertise_port,
            source_node: &self.name,
        };
        m.encode_to(out).ok()
    }

    fn encode_indirect_ping(
        &self,
        seq: u32,
        target: SocketAddr,
        node: &str,
        nack: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let ip = IpOctets::new(&self.config.advertise_addr);
        let tip = IpOctets::new(&target.ip());
        let m = IndirectPing {
            seq_no: seq,
            target: Some(tip.as_slice()),
            port: target.port(),
            node,
            nack,
            source_addr: ip.as_slice(),
            source_port: self.config.advertise_port,
            source_node: &self.name,
        };
        m.encode_to(out).ok()
    }

    /// `compound[ping, suspect]` into `buf` after [`HEADROOM`]; returns its length.
    fn build_ping_suspect(
        &self,
        seq: u32,
        node: &str,
        incarnation: u32,
        parts: &mut [u8],
        buf: &mut [u8],
    ) -> Option<usize> {
        let (a, b) = parts.split_at_mut(parts.len() / 2);
        let la = self.encode_ping(seq, node, a)?;
        let lb = Suspect { incarnation, node, from: &self.name }.encode_to(b).ok()?;
        let out = buf.get_mut(HEADROOM..)?;
        write_compound(out, &[a.get(..la)?, b.get(..lb)?]).ok()
    }

    /// Copies queued user packet `slot` into `buf` after [`HEADROOM`] and
    /// frees the slot; returns its length.
    fn build_user(&mut self, slot: u32, buf: &mut [u8]) -> Option<usize> {
        let body = self.user_slots.get(slot as usize)?;
        let len = body.len();
        buf.get_mut(HEADROOM..HEADROOM + len)?.copy_from_slice(body);
        self.user_free.push(slot);
        Some(len)
    }

    /// Fills `parts` after the lead message (its first `lead` bytes, none for
    /// gossip) with broadcasts that fit the datagram: memberlist's first,
    /// then the delegate's. Pushes the length of every part, lead included,
    /// to `lens` (empty before).
    fn piggyback(
        &mut self,
        lead: usize,
        parts: &mut [u8],
        lens: &mut SmallVec<[usize; 32]>,
        d: &mut impl Delegate,
    ) {
        let enc = self.encryption_overhead();
        let budget = self.config.udp_buffer_size.saturating_sub(lead + COMPOUND_HEADER + enc);
        if lead > 0 {
            lens.push(lead);
        }
        let mut pos = lead;
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
                let Some((kind, dst)) =
                    parts.get_mut(pos..pos + 1 + m.len()).and_then(|p| p.split_first_mut())
                else {
                    return false;
                };
                *kind = MessageType::User as u8;
                dst.copy_from_slice(m);
                pos += 1 + m.len();
                lens.push(1 + m.len());
                lens.len() < MAX_COMPOUND_PARTS
            });
        }
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

/// An ack for `seq`; a direct one carries the delegate's payload.
fn encode_ack(seq: u32, direct: bool, out: &mut [u8], d: &mut impl Delegate) -> Option<usize> {
    let mut payload = [0u8; MAX_ACK_PAYLOAD];
    let n = if direct { d.ack_payload(&mut payload).min(MAX_ACK_PAYLOAD) } else { 0 };
    let m = Ack { seq_no: seq, payload: if n > 0 { Some(payload.get(..n)?) } else { None } };
    m.encode_to(out).ok()
}

/// Writes the parts of `parts` (lengths `lens`, back to back) into `out`:
/// a single part bare, several as a compound. `None` for no parts.
fn assemble(lens: &[usize], parts: &[u8], out: &mut [u8]) -> Option<usize> {
    match lens {
        [] => None,
        &[n] => {
            out.get_mut(..n)?.copy_from_slice(parts.get(..n)?);
            Some(n)
        }
        _ => {
            let mut slices: SmallVec<[&[u8]; 32]> = SmallVec::new();
            let mut rest = parts;
            for &l in lens {
                let (part, tail) = rest.split_at_checked(l)?;
                slices.push(part);
                rest = tail;
            }
            write_compound(out, &slices).ok()
        }
    }
}
