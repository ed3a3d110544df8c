//! The agent processes: addresses, spawning, signals, `/proc` sampling and
//! log scanning. [`Agents`] kills every process it started when dropped
//! (normal end, error, panic); each child also gets `PR_SET_PDEATHSIG` so
//! it dies with the harness even on SIGKILL or Ctrl-C.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Gossip port of every agent (each has its own address).
pub const GOSSIP_PORT: u16 = 7946;
/// RPC port of every agent.
pub const RPC_PORT: u16 = 7373;

/// The address of agent `i`: `base + i`, skipping `.0` and `.255` in the
/// last octet so every address is an ordinary host address.
pub fn agent_ip(base: Ipv4Addr, i: usize) -> Ipv4Addr {
    let mut a = u32::from(base);
    let mut left = i;
    loop {
        let last = a & 0xff;
        if last != 0 && last != 255 {
            if left == 0 {
                return Ipv4Addr::from(a);
            }
            left -= 1;
        }
        a = a.wrapping_add(1);
    }
}

/// The node name of agent `i`.
pub fn node_name(i: usize) -> String {
    format!("lg-{i}")
}

/// The agent index of a node name made by [`node_name`].
pub fn node_index(name: &str) -> Option<usize> {
    name.strip_prefix("lg-")?.parse().ok()
}

/// One agent process.
pub struct Agent {
    pub name: String,
    pub ip: Ipv4Addr,
    pub log: PathBuf,
    child: Option<Child>,
    /// Still running (not killed, not left).
    pub live: bool,
    stopped: bool,
}

impl Agent {
    pub fn rpc_addr(&self) -> String {
        format!("{}:{RPC_PORT}", self.ip)
    }

    pub fn gossip_addr(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn signal(&self, sig: i32) -> Result<(), String> {
        let pid = self.pid().ok_or_else(|| format!("{} has no process", self.name))?;
        // SAFETY: kill(2) on the PID of our own unreaped child.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(format!("kill({pid}, {sig}): {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<(), String> {
        self.signal(libc::SIGKILL)?;
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        self.live = false;
        Ok(())
    }

    pub fn stop(&mut self) -> Result<(), String> {
        self.signal(libc::SIGSTOP)?;
        self.stopped = true;
        Ok(())
    }

    pub fn cont(&mut self) -> Result<(), String> {
        self.signal(libc::SIGCONT)?;
        self.stopped = false;
        Ok(())
    }

    /// Waits up to `limit` for the process to exit on its own (after a
    /// graceful leave); kills it otherwise. Returns whether it exited alone.
    pub fn reap(&mut self, limit: Duration) -> bool {
        self.live = false;
        let Some(mut c) = self.child.take() else { return true };
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// CPU time (user + system) so far, in seconds, from `/proc/PID/stat`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        Some((utime + stime) as f64 / crate::scenarios::clock_ticks())
    }

    /// Resident set size in bytes, from `/proc/PID/status` (`VmRSS`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

/// All agents of a run.
pub struct Agents {
    pub list: Vec<Agent>,
}

impl Agents {
    /// Starts `n` agents of `bin` (not joined to each other). Logs go to
    /// `dir/<name>.log`.
    pub fn spawn(
        bin: &Path,
        n: usize,
        base: Ipv4Addr,
        profile: &str,
        dir: &Path,
    ) -> Result<Agents, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut agents = Agents { list: Vec::with_capacity(n) };
        for i in 0..n {
            let name = node_name(i);
            let ip = agent_ip(base, i);
            let log = dir.join(format!("{name}.log"));
            let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = Command::new(bin);
            cmd.arg("agent")
                .arg(format!("-node={name}"))
                .arg(format!("-bind={ip}:{GOSSIP_PORT}"))
                .arg(format!("-rpc-addr={ip}:{RPC_PORT}"))
                .arg(format!("-profile={profile}"))
                .arg("-log-level=info")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            // SAFETY: prctl is async-signal-safe; nothing else runs between
            // fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
            agents.list.push(Agent {
                name,
                ip,
                log,
                child: Some(child),
                live: true,
                stopped: false,
            });
        }
        Ok(agents)
    }

    /// Indices of agents still running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.list.len()).filter(|&i| self.list[i].live).collect()
    }

    /// Fails if an agent that should be running has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        for a in &mut self.list {
            if let Some(c) = a.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
                    let last = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                    return Err(format!(
                        "agent {} exited unexpectedly ({st}): {last} (log: {})",
                        a.name,
                        a.log.display()
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for a in &mut self.list {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill(); // SIGKILL also ends a stopped process
                let _ = c.wait();
            }
        }
    }
}

/// Counts, per agent, log lines containing `needle` written since `from`
/// (byte offsets into each log, as returned by [`log_sizes`]).
pub fn count_log_lines(agents: &Agents, from: &[u64], needles: &[&str]) -> Vec<u64> {
    count_log_lines_where(agents, from, |l| needles.iter().any(|n| l.contains(n)))
}

/// Lines written to each agent's log since `from` (offsets from
/// [`log_sizes`]) for which `keep` holds.
pub fn count_log_lines_where(
    agents: &Agents,
    from: &[u64],
    keep: impl Fn(&str) -> bool,
) -> Vec<u64> {
    agents
        .list
        .iter()
        .zip(from)
        .map(|(a, &off)| {
            let Ok(mut f) = File::open(&a.log) else { return 0 };
            let mut s = String::new();
            if f.seek(SeekFrom::Start(off)).is_err() || f.read_to_string(&mut s).is_err() {
                return 0;
            }
            s.lines().filter(|l| keep(l)).count() as u64
        })
        .collect()
}

/// Current size of every agent's log.
pub fn log_sizes(agents: &Agents) -> Vec<u64> {
    agents.list.iter().map(|a| std::fs::metadata(&a.log).map_or(0, |m| m.len())).collect()
}

/// Raises the open-file limit to its hard maximum (one RPC stream per agent,
/// plus join connections).
pub fn raise_fd_limit() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_and_broadcast_octets() {
        let base = Ipv4Addr::new(127, 1, 0, 1);
        assert_eq!(agent_ip(base, 0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(agent_ip(base, 253), Ipv4Addr::new(127, 1, 0, 254));
        assert_eq!(agent_ip(base, 254), Ipv4Addr::new(127, 1, 1, 1));
        assert_eq!(node_index(&node_name(999)), Some(999));
        assert_eq!(node_index("other"), None);
    }
}
