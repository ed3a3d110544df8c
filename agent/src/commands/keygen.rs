//! `serf keygen`: a new 32-byte encryption key in standard base64.

use std::io::Read;

use super::Ui;
use crate::go::base64::encode_std;

/// Runs the command (arguments are ignored, as in Go); returns the exit code.
pub fn run(_args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut key = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key));
    if let Err(e) = read {
        ui.error(&format!("Error reading random data: {e}"));
        return 1;
    }
    ui.output(&encode_std(&key));
    0
}
