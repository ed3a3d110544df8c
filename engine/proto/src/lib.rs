//! Sans-IO protocol state machines: inputs carry `now`, outputs are polled.
//! Nothing here touches a socket, a thread or the OS clock: the crate's
//! `Cargo.toml` has no mio, socket2 or crossbeam, and its `clippy.toml` bans
//! the clock, sleeping, spawning, sockets and locks (forbidden below, so no
//! `#[allow]` can opt out).
//!
//! Indexing that could panic is denied (as in `wire`): input-derived
//! positions go through `get`, iterators and checked splits, and an index
//! the code itself produced (a slab slot, a node-table position) is looked
//! up the same way, its absence treated as nothing to do. Tests are exempt.
#![forbid(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(clippy::indexing_slicing)]

pub mod broadcast;
pub mod coordinate;
pub mod memberlist;
pub mod rng;
pub mod serf;
pub mod time;
pub mod timer;

use std::net::SocketAddr;

use crate::time::Instant;
use memberlist::{
    Framing, Scratch, StreamData, StreamDir, StreamId, StreamReply, StreamRequest, Transmit,
};

/// The sans-IO surface of one engine instance (memberlist with its
/// delegate, or Serf): what the runtime and the simulator drive.
///
/// After any `handle_*` call, drain [`Endpoint::poll_transmit`] and
/// [`Endpoint::poll_stream`] until `None`, then [`Endpoint::poll_event`],
/// and re-arm the timer from [`Endpoint::poll_timeout`].
///
/// Streams: the caller moves bytes and never interprets them. It hands
/// everything read so far from a TCP stream to
/// [`Endpoint::handle_stream_data`], which frames it and, once a frame is
/// complete, runs [`Endpoint::handle_stream_request`] or
/// [`Endpoint::handle_stream_reply`]; transport failures (refused, reset,
/// timed out, closed early) go to [`Endpoint::handle_stream_error`].
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
    /// [`wire::packet::PACKET_BUF`] bytes).
    fn poll_transmit(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> Option<Transmit>;
    /// The next stream to open, its request bytes written into `out`.
    fn poll_stream(&mut self, out: &mut Vec<u8>, scratch: &mut Scratch) -> Option<StreamRequest>;
    /// The bytes read so far from a TCP stream, `data` (from its first
    /// byte; it may be decrypted in place once complete): call after every
    /// read that added bytes. Frames them ([`memberlist::stream_frame`]):
    ///
    /// * [`StreamData::More`]: nothing happened; read more, up to its limit,
    ///   and call again with all the bytes;
    /// * [`StreamData::Frame`]: the frame was handed to
    ///   [`Endpoint::handle_stream_request`] (inbound; any reply is in
    ///   `reply`, cleared by the caller first) or
    ///   [`Endpoint::handle_stream_reply`] (outbound);
    /// * [`StreamData::Invalid`]: the bytes can never form a frame; an
    ///   outbound stream was failed through [`Endpoint::handle_stream_error`]
    ///   with Go's text. Close the connection.
    ///
    /// Allocates nothing except on the error path.
    fn handle_stream_data(
        &mut self,
        now: Instant,
        dir: StreamDir,
        data: &mut [u8],
        reply: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> StreamData {
        match memberlist::stream_frame(data) {
            Ok(Framing::More { limit }) => StreamData::More { limit },
            Ok(Framing::Frame(frame)) => {
                let len = frame.len();
                let reply = match dir {
                    StreamDir::Inbound => self.handle_stream_request(now, frame, reply, scratch),
                    StreamDir::Outbound(id) => {
                        self.handle_stream_reply(now, id, frame, scratch);
                        StreamReply::Close
                    }
                };
                StreamData::Frame { len, reply }
            }
            Err(e) => {
                if let StreamDir::Outbound(id) = dir {
                    self.handle_stream_error(now, id, &e.to_string());
                }
                StreamData::Invalid(e)
            }
        }
    }
    /// The complete reply frame of stream `id` (what
    /// [`Endpoint::handle_stream_data`] calls; a wrapper may intercept it).
    fn handle_stream_reply(
        &mut self,
        now: Instant,
        id: StreamId,
        frame: &mut [u8],
        scratch: &mut Scratch,
    );
    /// Stream `id` failed with a transport error message (Go's text, e.g.
    /// `dial tcp 10.0.0.1:7946: connect: connection refused`, `EOF`).
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str);
    /// An inbound stream delivered one complete frame (what
    /// [`Endpoint::handle_stream_data`] calls); write any reply into `reply`.
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

/// A bare memberlist with a delegate, as an [`Endpoint`]: the one place the
/// trait's inputs and outputs meet [`memberlist::Memberlist`]'s. Endpoints
/// built on it (Serf, and wrappers of Serf) are [`Layer`]s.
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

/// An input on its way to a [`Layer`]'s inner endpoint (see [`Layer::admit`]).
#[derive(Debug)]
pub enum Input<'a> {
    /// [`Endpoint::handle_datagram`].
    Datagram { from: SocketAddr, datagram: &'a [u8] },
    /// [`Endpoint::handle_timeout`], with the worker's scratch (a layer
    /// that held inputs back hands them to the inner endpoint here).
    Timeout { scratch: &'a mut Scratch },
    /// [`Endpoint::handle_stream_reply`].
    StreamReply { id: StreamId, frame: &'a [u8] },
    /// [`Endpoint::handle_stream_error`].
    StreamError { id: StreamId, error: &'a str },
    /// [`Endpoint::handle_stream_request`] (a refused one is closed unanswered).
    StreamRequest { frame: &'a [u8] },
}

/// Proof that the caller is the [`Endpoint`] impl every [`Layer`] shares:
/// only this crate can make one, so a layer's inner endpoint is reachable
/// mutably through [`Layer::inner_mut`] by that impl alone.
#[derive(Debug)]
pub struct Forwarding(());

/// An endpoint built on another one, the way Serf is built on memberlist
/// and loadgen's node on Serf: every [`Layer`] is an [`Endpoint`] through
/// one generic impl that hands each input to the inner endpoint and then
/// runs the layer's hooks, all statically dispatched. Implement the two
/// accessors, [`Layer::next_event`], and whichever hooks the layer needs.
///
/// Per input: [`Layer::admit`], then the inner endpoint's handler, then
/// (for a timeout) [`Layer::on_timeout`], then [`Layer::after_input`].
/// Outputs come from the inner endpoint unless [`Layer::holds_output`],
/// each filtered by [`Layer::keep_transmit`] / [`Layer::keep_stream`];
/// when the inner endpoint has no more, [`Layer::after_output`] runs. So
/// every layer's work is settled by its input or output calls, and
/// [`Endpoint::poll_event`] only drains.
pub trait Layer {
    /// The endpoint this layer is built on.
    type Inner: Endpoint;
    /// What the layer reports to its owner.
    type Event;

    /// The inner endpoint.
    fn inner(&self) -> &Self::Inner;
    /// The inner endpoint, for the shared impl (see [`Forwarding`]).
    fn inner_mut(&mut self, proof: Forwarding) -> &mut Self::Inner;
    /// The layer's next event ([`Endpoint::poll_event`]).
    fn next_event(&mut self) -> Option<Self::Event>;

    /// Whether `input` goes on to the inner endpoint now (default: all).
    /// A layer that refuses one has dealt with it itself (dropped it, or
    /// kept it to hand over later); nothing else runs for it.
    fn admit(&mut self, _now: Instant, _input: Input<'_>) -> bool {
        true
    }
    /// Runs after every admitted input reached the inner endpoint, with
    /// that input's `now`.
    fn after_input(&mut self, _now: Instant) {}
    /// The layer's own timers due at `now`, after the inner endpoint's.
    fn on_timeout(&mut self, _now: Instant) {}
    /// When [`Endpoint::handle_timeout`] must next be called (default: when
    /// the inner endpoint asks).
    fn deadline(&self) -> Option<Instant> {
        self.inner().poll_timeout()
    }
    /// True while no output may leave (it stays queued in the inner endpoint).
    fn holds_output(&self) -> bool {
        false
    }
    /// Runs each time the inner endpoint's datagrams or streams are drained
    /// (its `poll_transmit` or `poll_stream` returned `None`): building
    /// packets and streams can finish broadcasts or fail streams, which the
    /// layer settles here (at the time of the input the outputs follow).
    /// What it queues goes out with the next drain.
    fn after_output(&mut self) {}
    /// Whether datagram `t` is sent (false: dropped).
    fn keep_transmit(&mut self, _t: &Transmit) -> bool {
        true
    }
    /// Whether stream `r` is opened (false: the layer deals with it; its
    /// request bytes are in `out`).
    fn keep_stream(&mut self, _r: &StreamRequest, _out: &mut Vec<u8>) -> bool {
        true
    }
}

impl<L: Layer> Endpoint for L {
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        scratch: &mut Scratch,
    ) {
        if self.admit(now, Input::Datagram { from, datagram }) {
            self.inner_mut(Forwarding(())).handle_datagram(now, from, datagram, scratch);
            self.after_input(now);
        }
    }

    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch) {
        if self.admit(now, Input::Timeout { scratch: &mut *scratch }) {
            self.inner_mut(Forwarding(())).handle_timeout(now, scratch);
            self.on_timeout(now);
            self.after_input(now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline()
    }

    fn poll_transmit(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> Option<Transmit> {
        if self.holds_output() {
            return None;
        }
        // Ends: each call takes one queued datagram out of the inner endpoint.
        loop {
            let Some(t) = self.inner_mut(Forwarding(())).poll_transmit(buf, scratch) else {
                self.after_output();
                return None;
            };
            if self.keep_transmit(&t) {
                return Some(t);
            }
        }
    }

    fn poll_stream(&mut self, out: &mut Vec<u8>, scratch: &mut Scratch) -> Option<StreamRequest> {
        if self.holds_output() {
            return None;
        }
        // Ends: each call takes one queued stream out of the inner endpoint.
        loop {
            let Some(r) = self.inner_mut(Forwarding(())).poll_stream(out, scratch) else {
                self.after_output();
                return None;
            };
            if self.keep_stream(&r, out) {
                return Some(r);
            }
        }
    }

    fn handle_stream_reply(
        &mut self,
        now: Instant,
        id: StreamId,
        frame: &mut [u8],
        scratch: &mut Scratch,
    ) {
        if self.admit(now, Input::StreamReply { id, frame }) {
            self.inner_mut(Forwarding(())).handle_stream_reply(now, id, frame, scratch);
            self.after_input(now);
        }
    }

    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        if self.admit(now, Input::StreamError { id, error }) {
            self.inner_mut(Forwarding(())).handle_stream_error(now, id, error);
            self.after_input(now);
        }
    }

    fn handle_stream_request(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        reply: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> StreamReply {
        if !self.admit(now, Input::StreamRequest { frame }) {
            return StreamReply::Close;
        }
        let r = self.inner_mut(Forwarding(())).handle_stream_request(now, frame, reply, scratch);
        self.after_input(now);
        r
    }

    fn memberlist(&self) -> &memberlist::Memberlist {
        self.inner().memberlist()
    }

    type Event = L::Event;
    fn poll_event(&mut self) -> Option<L::Event> {
        self.next_event()
    }
}
