//! `loadgen`: cluster experiments against our engine or any Serf binary.
//!
//! Three modes run the same scenarios and fill the same [`report::Report`]:
//! `inproc` (N engine instances on the thread-per-core runtime, one process),
//! `process` (N real agent processes of any Serf-compatible binary, observed
//! through RPC) and `sim` (the deterministic simulator, virtual time).

mod args;
mod inproc;
mod node;
mod observe;
mod plot;
mod process;
mod report;
mod scenarios;
mod sim;

use clap::Parser;

use args::{Args, Mode};

fn main() {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
    let mut report = report::Report::new(&args);
    let outcome = match args.mode {
        Mode::Inproc => inproc::run(&args, &mut report),
        Mode::Process => process::run(&args, &mut report),
        Mode::Sim => sim::run(&args, &mut report),
    };
    if let Err(e) = outcome {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
    if let Err(e) = report.finish(&args) {
        eprintln!("loadgen: writing results: {e}");
        std::process::exit(1);
    }
    if !report.passed() {
        std::process::exit(3);
    }
}
