//! Reimplementations of the Go standard-library behaviour that the `serf`
//! CLI and agent configuration expose byte for byte: flag parsing, `fmt`
//! quoting and `%#v`, `encoding/json` (parse errors and `MarshalIndent`),
//! `time.ParseDuration`, `encoding/base64` errors, `net` address handling,
//! and `columnize` tables. Written from the documented behaviour of Go 1.19
//! (the toolchain of Debian's serf 0.9.4) and checked against the binary.

pub mod base64;
pub mod columnize;
pub mod flag;
pub mod fmt;
pub mod json;
pub use gonet as net;
pub mod time;
