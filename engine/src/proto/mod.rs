//! Sans-IO protocol state machines: inputs carry `now`, outputs are polled.
//! Nothing here touches a socket, a thread or the OS clock.

pub mod coordinate;
