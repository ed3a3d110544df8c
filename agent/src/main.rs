//! `serf`: a drop-in replacement for HashiCorp Serf 0.9.x.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("-v") | Some("--version") => {
            println!("0.8.2-dev");
            println!("Agent Protocol: 5 (Understands back to: 2)");
        }
        _ => {
            eprintln!("usage: serf <command> [<args>]\n\nthe agent and the RPC commands are not built yet");
            std::process::exit(127);
        }
    }
}
