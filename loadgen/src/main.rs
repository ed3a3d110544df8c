//! `loadgen`: cluster experiments against our engine or any Serf binary.

fn main() {
    eprintln!("loadgen: no scenarios are built yet");
    std::process::exit(2);
}
