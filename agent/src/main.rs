//! `serf`: a drop-in replacement for HashiCorp Serf 0.9.x.
//!
//! Top-level dispatch behaves like the Go binary (serf's `main.go` on top of
//! `mitchellh/cli`), see `shared/protocol/cli.md` §1:
//!
//! * `-v` or `--version` anywhere runs `version`;
//! * `-h`, `-help`, `--help` anywhere before `--` asks for help: the command
//!   list (no command) or the command's help, on stderr, exit 0;
//! * no command or an unknown one: the command list on stderr, exit 127;
//! * flags before the command: `Invalid flags before the subcommand...` and
//!   the command's help on stderr, exit 1;
//! * otherwise the command runs with the arguments after its name.

use std::io::Write;

use agent::commands::{self, texts, Ui};

fn main() {
    // One malloc arena for all threads: the agent's threads allocate little,
    // and per-thread arenas would cost resident memory for nothing.
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(run(args));
}

fn run(mut args: Vec<String>) -> i32 {
    if args.iter().any(|a| a == "-v" || a == "--version") {
        args.insert(0, "version".to_string());
    }
    let mut is_help = false;
    let mut top_flags = false;
    let mut sub: Option<(String, Vec<String>)> = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == "--" {
            break;
        }
        if arg == "-h" || arg == "-help" || arg == "--help" {
            is_help = true;
            continue;
        }
        if sub.is_none() {
            if arg == "-v" || arg == "-version" || arg == "--version" {
                continue;
            }
            if arg.starts_with('-') {
                top_flags = true;
            } else if !arg.is_empty() {
                sub = Some((arg.clone(), args[i + 1..].to_vec()));
            }
        }
    }
    let stderr = |s: &str| {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
    };
    let Some((name, sub_args)) = sub else {
        stderr(texts::COMMAND_LIST);
        return if is_help { 0 } else { 127 };
    };
    let Some(spec) = commands::find(&name) else {
        stderr(texts::COMMAND_LIST);
        return 127;
    };
    if is_help {
        stderr(&format!("{}\n", spec.help));
        return 0;
    }
    if top_flags {
        stderr(&format!(
            "Invalid flags before the subcommand. If these flags are for\n\
             the subcommand, please put them after the subcommand.\n\n{}\n",
            spec.help
        ));
        return 1;
    }
    if name != "agent" {
        // The agent runtime installs its own signal handling.
        commands::catch_interrupts();
    }
    // Not `.lock()`: the agent's log lines come from other threads.
    let mut stdout = std::io::stdout();
    let mut ui = Ui::new(&mut stdout);
    (spec.run)(&sub_args, &mut ui)
}
