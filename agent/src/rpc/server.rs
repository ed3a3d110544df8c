//! The agent RPC server: NOT BUILT YET. This placeholder only binds the
//! listener so `serf agent` can report the address; it accepts no sessions.
//! The real server (`shared/protocol/rpc.md`) replaces this file.

use std::net::SocketAddr;

use crate::agent::AgentHandle;

/// Placeholder: holds the bound listener.
pub struct RpcServer {
    addr: SocketAddr,
    _listener: std::net::TcpListener,
}

impl RpcServer {
    /// Binds `addr`.
    pub fn start(addr: SocketAddr, _auth: &str, _agent: AgentHandle) -> std::io::Result<RpcServer> {
        let l = std::net::TcpListener::bind(addr)?;
        Ok(RpcServer { addr: l.local_addr()?, _listener: l })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener.
    pub fn shutdown(self) {}
}
