//! Cluster-wide keyring operations (`protocol/serf.md` §9.1): the
//! `_serf_*-key` queries, answering them from our keyring, and aggregating
//! the answers at the origin.

use std::collections::BTreeMap;

use super::query::{Consumer, QueryParams};
use super::{CommandId, Encoded, Event, SerfState};
use crate::time::Instant;
use wire::crypto::Keyring;
use wire::msgpack::{Dialect, Writer};
use wire::serf::{KeyRequest, KeyResponse as KeyResponseMsg, SerfMessage, SerfType};

/// A keyring operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOp {
    Install,
    Use,
    Remove,
    List,
    /// A request whose payload could not be decoded.
    Invalid,
}

impl KeyOp {
    fn query_name(self) -> &'static str {
        match self {
            KeyOp::Install => "_serf_install-key",
            KeyOp::Use => "_serf_use-key",
            KeyOp::Remove => "_serf_remove-key",
            KeyOp::List | KeyOp::Invalid => "_serf_list-keys",
        }
    }
}

/// The aggregated outcome of a key operation (the RPC key response).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyResponse {
    /// Node → error or warning text.
    pub messages: BTreeMap<String, String>,
    /// Base64 key → number of nodes holding it.
    pub keys: BTreeMap<String, usize>,
    /// Base64 primary key → number of nodes using it.
    pub primary_keys: BTreeMap<String, usize>,
    pub num_nodes: usize,
    pub num_resp: usize,
    pub num_err: usize,
}

/// A key operation in progress.
#[derive(Debug)]
pub(super) struct KeyCollect {
    id: CommandId,
    query: super::QueryId,
    resp: KeyResponse,
}

/// Standard base64 with padding (keys are shown and listed this way).
pub fn base64(data: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(data)
}

fn key_response_bytes(
    result: bool,
    message: &str,
    keys: Option<&[String]>,
    primary: &str,
) -> Vec<u8> {
    let m = KeyResponseMsg { result, message, keys: None, primary_key: primary };
    let enc = |w: &mut Writer<'_>| -> wire::Result<()> {
        w.byte(SerfType::KeyResponse as u8)?;
        m.encode_body_with(w, keys.map(|k| k.iter().map(String::as_str)))
    };
    let mut c = Writer::counting(Dialect::Gossip);
    let _ = enc(&mut c);
    let mut out = vec![0u8; c.len()];
    let _ = enc(&mut Writer::new(&mut out, Dialect::Gossip));
    out
}

/// Applies a key query to `keyring` and answers it; true if the keyring changed.
pub(super) fn apply(
    keyring: Option<&mut Keyring>,
    op: KeyOp,
    key: Option<&[u8]>,
    st: &mut SerfState,
    now: Instant,
    respond: u64,
) -> bool {
    let mut changed = false;
    // Go's log lines: an error when there is no keyring, otherwise a note of
    // the request and an error if the keyring refused it.
    match (op, keyring.is_some()) {
        (KeyOp::Invalid, _) => {}
        (KeyOp::List, false) => {
            st.log(super::Level::Error, "serf", "Keyring is empty (encryption not enabled)".into())
        }
        (_, false) => st.log(
            super::Level::Error,
            "serf",
            "No keyring to modify (encryption not enabled)".into(),
        ),
        (op, true) => {
            let what = op.query_name().trim_start_matches("_serf_");
            st.log(super::Level::Info, "serf", format!("Received {what} query"));
        }
    }
    let payload = match (op, keyring) {
        (KeyOp::Invalid, _) => key_response_bytes(false, "", None, ""),
        (KeyOp::List, None) => {
            key_response_bytes(false, "Keyring is empty (encryption not enabled)", None, "")
        }
        (_, None) => {
            key_response_bytes(false, "No keyring to modify (encryption not enabled)", None, "")
        }
        (KeyOp::List, Some(ring)) => {
            let all: Vec<String> = ring.keys().map(base64).collect();
            let primary = base64(ring.primary());
            let limit = st.config.query_response_size_limit;
            let mut payload = key_response_bytes(true, "", Some(&all), &primary);
            // Too large for one response: show a shrinking prefix (Go starts at limit / 25).
            let mut n = (limit / 25).min(all.len());
            while payload.len() > limit && n > 0 {
                let msg = format!(
                    "truncated key list response, showing first {} of {} keys",
                    n,
                    all.len()
                );
                payload = key_response_bytes(true, &msg, all.get(..n), &primary);
                n -= 1;
            }
            payload
        }
        (op, Some(ring)) => {
            let key = key.unwrap_or(&[]);
            let r = match op {
                KeyOp::Install => ring.add_key(key).map_err(|e| e.to_string()),
                KeyOp::Use => ring.use_key(key).map_err(|e| e.to_string()),
                _ => ring.remove_key(key).map_err(|e| e.to_string()),
            };
            match r {
                Ok(()) => {
                    changed = true;
                    key_response_bytes(true, "", None, "")
                }
                Err(e) => {
                    let verb = match op {
                        KeyOp::Install => "install key",
                        KeyOp::Use => "change primary key",
                        _ => "remove key",
                    };
                    st.log(super::Level::Error, "serf", format!("Failed to {verb}: {e}"));
                    key_response_bytes(false, &e, None, "")
                }
            }
        }
    };
    if let Err(e) = st.respond(now, respond, &payload) {
        st.log(super::Level::Error, "serf", format!("Failed to respond to key query: {e}"));
    }
    changed
}

impl SerfState {
    /// Starts a key operation over the cluster; `nodes` = alive members now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_key_op(
        &mut self,
        now: Instant,
        id: CommandId,
        op: KeyOp,
        key: &[u8],
        relay_factor: u8,
        timeout: core::time::Duration,
        nodes: usize,
    ) {
        let req = KeyRequest { key: Some(key) }.encoded();
        let params = QueryParams { relay_factor, ..QueryParams::default() };
        let mut resp = KeyResponse { num_nodes: nodes, ..KeyResponse::default() };
        match self.start_query_as(
            now,
            op.query_name(),
            &req,
            &params,
            timeout,
            nodes,
            Consumer::Keys(id),
        ) {
            Ok(query) => self.key_ops.push(KeyCollect { id, query, resp }),
            Err(e) => {
                resp.num_nodes = nodes;
                self.emit(Event::KeysDone { id, response: resp, error: Some(e) });
            }
        }
    }

    /// One node's answer to our key query (`streamKeyResp`).
    pub(super) fn key_response(&mut self, id: CommandId, from: &str, payload: &[u8]) {
        let Some(k) = self.key_ops.iter_mut().find(|k| k.id == id) else { return };
        let r = &mut k.resp;
        r.num_resp += 1;
        match payload.first() {
            Some(&t) if t == SerfType::KeyResponse as u8 => match SerfMessage::decode(payload) {
                Ok(SerfMessage::KeyResponse(m)) => {
                    if !m.result {
                        r.messages.insert(from.to_string(), m.message.to_string());
                        r.num_err += 1;
                    } else if !m.message.is_empty() {
                        r.messages.insert(from.to_string(), m.message.to_string());
                    }
                    for key in m.keys.into_iter().flat_map(|l| l.iter()) {
                        *r.keys.entry(key.to_string()).or_default() += 1;
                    }
                    *r.primary_keys.entry(m.primary_key.to_string()).or_default() += 1;
                }
                _ => {
                    r.messages.insert(
                        from.to_string(),
                        format!("Failed to decode key query response: {payload:?}"),
                    );
                    r.num_err += 1;
                }
            },
            _ => {
                r.messages.insert(
                    from.to_string(),
                    format!("Invalid key query response type: {payload:?}"),
                );
                r.num_err += 1;
            }
        }
        if r.num_resp == r.num_nodes {
            let query = k.query;
            if let Some(c) = self.collectors.iter_mut().find(|c| c.id == query) {
                c.closed = true;
            }
            self.key_op_done(id);
        }
    }

    /// Finishes a key operation (all answered, or the query timed out).
    pub(super) fn key_op_done(&mut self, id: CommandId) {
        let Some(pos) = self.key_ops.iter().position(|k| k.id == id) else { return };
        let k = self.key_ops.swap_remove(pos);
        let r = k.resp;
        let error = if r.num_err != 0 {
            Some(format!("{}/{} nodes reported failure", r.num_err, r.num_nodes))
        } else if r.num_resp != r.num_nodes {
            Some(format!("{}/{} nodes reported success", r.num_resp, r.num_nodes))
        } else {
            None
        };
        self.emit(Event::KeysDone { id, response: r, error });
    }
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        let k1 = [
            0xff, 0x66, 0x8b, 0xa5, 0x77, 0x73, 0x7e, 0xd0, 0x67, 0x02, 0xad, 0x58, 0x70, 0xf3,
            0x84, 0x0e, 0x99, 0xdf, 0x44, 0xe0, 0x2c, 0x4a, 0xd5, 0x9d, 0x30, 0xa4, 0xae, 0x1e,
            0x42, 0x22, 0x79, 0xd2,
        ];
        assert_eq!(base64(&k1), "/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=");
    }
}
