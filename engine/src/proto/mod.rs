//! Sans-IO protocol state machines: inputs carry `now`, outputs are polled.
//! Nothing here touches a socket, a thread or the OS clock.

pub mod broadcast;
pub mod coordinate;
pub mod memberlist;
pub mod serf;

use std::net::SocketAddr;

use crate::time::Instant;
use memberlist::{Scratch, StreamId, StreamReply, StreamRequest, Transmit};

/// The sans-IO surface of one engine instance (memberlist with its
/// delegate, or Serf): what the runtime and the simulator drive.
///
/// After any `handle_*` call, drain [`Endpoint::poll_transmit`] and
/// [`Endpoint::poll_stream`] until `None` and re-arm the timer from
/// [`Endpoint::poll_timeout`].
pub trait Endpoint {
    /// A datagram arrived from `from`; it may be decrypted in place.
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        scratch: &mut Scratch,
    );
    /// Timers due at `now` fire.
    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch);
    /// When [`Endpoint::handle_timeout`] must next be called.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next datagram to send, built into `buf` (at least
    /// [`crate::wire::packet::PACKET_BUF`] bytes).
    fn poll_transmit(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> Option<Transmit>;
    /// The next stream to open, its request bytes written into `out`.
    fn poll_stream(&mut self, out: &mut Vec<u8>, scratch: &mut Scratch) -> Option<StreamRequest>;
    /// The reply frame of stream `id`.
    fn handle_stream_reply(
        &mut self,
        now: Instant,
        id: StreamId,
        frame: &mut [u8],
        scratch: &mut Scratch,
    );
    /// Stream `id` failed with a transport error message.
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str);
    /// An inbound stream delivered one frame; write any reply into `reply`.
    fn handle_stream_request(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        reply: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> StreamReply;
    /// The membership layer, for observers (simulator checks, stats).
    fn memberlist(&self) -> &memberlist::Memberlist;

    /// What the instance reports to its owner.
    type Event;
    /// The next event, if any; drain after every input.
    fn poll_event(&mut self) -> Option<Self::Event>;
}

/// A bare memberlist with a delegate, as an [`Endpoint`].
#[derive(Debug)]
pub struct Membership<D> {
    /// The state machine.
    pub ml: memberlist::Memberlist,
    /// What it reports to.
    pub delegate: D,
}

impl<D: memberlist::Delegate> Endpoint for Membership<D> {
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        scratch: &mut Scratch,
    ) {
        self.ml.handle_datagram(now, from, datagram, scratch, &mut self.delegate);
    }
    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch) {
        self.ml.handle_timeout(now, scratch, &mut self.delegate);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.ml.poll_timeout()
    }
    fn poll_transmit(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> Option<Transmit> {
        self.ml.poll_transmit(buf, scratch, &mut self.delegate)
    }
    fn poll_stream(&mut self, out: &mut Vec<u8>, scratch: &mut Scratch) -> Option<StreamRequest> {
        self.ml.poll_stream(out, scratch, &mut self.delegate)
    }
    fn handle_stream_reply(
        &mut self,
        now: Instant,
        id: StreamId,
        frame: &mut [u8],
        scratch: &mut Scratch,
    ) {
        self.ml.handle_stream_reply(now, id, frame, scratch, &mut self.delegate);
    }
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        self.ml.handle_stream_error(now, id, error, &mut self.delegate);
    }
    fn handle_stream_request(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        reply: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> StreamReply {
        self.ml.handle_stream_request(now, frame, reply, scratch, &mut self.delegate)
    }
    fn memberlist(&self) -> &memberlist::Memberlist {
        &self.ml
    }

    type Event = memberlist::Event;
    fn poll_event(&mut self) -> Option<memberlist::Event> {
        self.ml.poll_event()
    }
}
