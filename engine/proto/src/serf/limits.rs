//! The size-limit errors of Serf's commands, in Go's words, written once:
//! the engine returns them, and the agent's RPC server uses them for a
//! request too large to read (it answers as Go would on the size alone).

/// A user event (name + payload) over the configured limit.
pub fn user_event_too_large(limit: usize) -> String {
    format!("user event exceeds configured limit of {limit} bytes before encoding")
}

/// An encoded query over the configured limit.
pub fn query_too_large(limit: usize) -> String {
    format!("query exceeds limit of {limit} bytes")
}

/// An encoded query response over the configured limit.
pub fn response_too_large(limit: usize) -> String {
    format!("response exceeds limit of {limit} bytes")
}

/// Encoded tags over memberlist's meta limit.
pub fn tags_too_large() -> String {
    format!("Encoded length of tags exceeds limit of {} bytes", wire::serf::META_MAX_SIZE)
}
