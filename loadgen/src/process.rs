//! `--mode process`.

use crate::args::Args;
use crate::report::Report;

/// Runs the scenarios of `args` and records them into `report`.
pub fn run(_args: &Args, _report: &mut Report) -> Result<(), String> {
    Err("mode process is not built yet".into())
}
