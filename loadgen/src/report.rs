//! The one report every mode fills: per-phase latency histograms, scalar
//! figures, time series for plots and pass/fail checks. Rendering (table,
//! JSON, plots) lives here too so the three modes are reported alike.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::Args;

/// A latency distribution, in milliseconds.
#[derive(Debug, Serialize)]
pub struct HistSummary {
    pub name: String,
    pub unit: &'static str,
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Raw samples are kept for CDF plots (bounded by the cluster size).
    #[serde(skip)]
    pub samples: Vec<f64>,
}

/// A single figure (counts, rates, bytes).
#[derive(Debug, Serialize)]
pub struct Scalar {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

/// A curve for plots: (seconds since phase start, value).
#[derive(Debug, Serialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// An assertion the phase makes about the protocol.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

/// One scenario's results.
#[derive(Debug, Default, Serialize)]
pub struct Phase {
    pub scenario: String,
    pub hists: Vec<HistSummary>,
    pub scalars: Vec<Scalar>,
    pub series: Vec<Series>,
    pub checks: Vec<Check>,
}

impl Phase {
    /// Records a latency distribution (samples in milliseconds).
    pub fn hist(&mut self, name: &str, samples_ms: &[f64]) {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
        for &s in samples_ms {
            // Microsecond resolution, saturating at the histogram's top.
            let us = (s * 1000.0).round().clamp(1.0, 3_600_000_000.0) as u64;
            h.saturating_record(us);
        }
        let q = |p: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(p) as f64 / 1000.0 };
        self.hists.push(HistSummary {
            name: name.to_string(),
            unit: "ms",
            count: h.len(),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
            samples: samples_ms.to_vec(),
        });
    }

    /// Records one figure.
    pub fn scalar(&mut self, name: &str, value: f64, unit: &'static str) {
        self.scalars.push(Scalar { name: name.to_string(), value, unit });
    }

    /// Records a curve for plotting.
    pub fn series(&mut self, name: &str, points: Vec<(f64, f64)>) {
        self.series.push(Series { name: name.to_string(), points });
    }

    /// Records a check.
    pub fn check(&mut self, name: &str, pass: bool, detail: impl Into<String>) {
        self.checks.push(Check { name: name.to_string(), pass, detail: detail.into() });
    }
}

/// Run metadata.
#[derive(Debug, Serialize)]
pub struct Meta {
    pub mode: String,
    pub nodes: usize,
    pub scenarios: Vec<String>,
    pub git_rev: String,
    pub machine: String,
    pub cores: usize,
    pub agent_bin: Option<String>,
    pub config: Vec<(String, String)>,
    /// The exact command line.
    pub command: String,
    /// When the run started, UTC (RFC 3339).
    pub date_utc: String,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub meta: Meta,
    pub phases: Vec<Phase>,
}

impl Report {
    pub fn new(args: &Args) -> Report {
        Report {
            meta: Meta {
                mode: format!("{:?}", args.mode).to_lowercase(),
                nodes: args.nodes,
                scenarios: args.scenario.iter().map(|s| format!("{s:?}").to_lowercase()).collect(),
                git_rev: git_rev(),
                machine: machine(),
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                agent_bin: args.agent_bin.as_ref().map(|p| p.display().to_string()),
                config: Vec::new(),
                command: command_line(),
                date_utc: date_utc(),
            },
            phases: Vec::new(),
        }
    }

    /// Starts a phase; fill it through the returned reference.
    pub fn phase(&mut self, scenario: &str) -> &mut Phase {
        self.phases.push(Phase { scenario: scenario.to_string(), ..Phase::default() });
        self.phases.last_mut().expect("just pushed")
    }

    /// Records a configuration value in the metadata.
    pub fn config(&mut self, key: &str, value: impl ToString) {
        self.meta.config.push((key.to_string(), value.to_string()));
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.phases.iter().all(|p| p.checks.iter().all(|c| c.pass))
    }

    /// Prints the table and writes JSON (and plots) under `--out`.
    pub fn finish(&self, args: &Args) -> std::io::Result<()> {
        print!("{}", self.table());
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir)?;
            let stem = args
                .name
                .clone()
                .unwrap_or_else(|| format!("loadgen-{}-{}", self.meta.mode, self.meta.nodes));
            let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
            std::fs::write(dir.join(format!("{stem}.json")), json + "\n")?;
            let plots = crate::plot::write_all(self, dir, &stem)?;
            std::fs::write(dir.join(format!("{stem}.md")), self.markdown(&stem, &plots))?;
        }
        Ok(())
    }

    /// A markdown summary of the run; `plots` are file names next to it.
    pub fn markdown(&self, stem: &str, plots: &[String]) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let m = &self.meta;
        let _ = writeln!(s, "# loadgen: {} mode, {} nodes\n", m.mode, m.nodes);
        let verdict = if self.passed() { "all checks passed" } else { "SOME CHECKS FAILED" };
        let _ = writeln!(s, "Result: **{verdict}**. Machine-readable: `{stem}.json`.\n");
        let _ = writeln!(s, "- command: `{}`", m.command);
        let _ = writeln!(s, "- date (UTC): {}", m.date_utc);
        let _ = writeln!(s, "- git revision: {}", m.git_rev);
        let _ = writeln!(s, "- machine: {} ({} cores)", m.machine, m.cores);
        let _ = writeln!(s, "- scenarios: {}", m.scenarios.join(", "));
        for (k, v) in &m.config {
            let _ = writeln!(s, "- {k}: {v}");
        }
        for p in &self.phases {
            let _ = writeln!(s, "\n## {}\n", p.scenario);
            if !p.hists.is_empty() {
                let _ = writeln!(s, "| distribution | n | p50 | p99 | p99.9 | max | unit |");
                let _ = writeln!(s, "|---|---|---|---|---|---|---|");
                for h in &p.hists {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                        h.name, h.count, h.p50, h.p99, h.p999, h.max, h.unit
                    );
                }
                let _ = writeln!(s);
            }
            if !p.scalars.is_empty() {
                let _ = writeln!(s, "| figure | value | unit |");
                let _ = writeln!(s, "|---|---|---|");
                for c in &p.scalars {
                    let _ = writeln!(s, "| {} | {} | {} |", c.name, fmt_value(c.value), c.unit);
                }
                let _ = writeln!(s);
            }
            for c in &p.checks {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(s, "- **{verdict}** {}: {}", c.name, c.detail);
            }
        }
        if !plots.is_empty() {
            let _ = writeln!(s, "\n## Plots\n");
            for f in plots {
                let _ = writeln!(s, "![{f}]({f})\n");
            }
        }
        s
    }

    /// The human table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let m = &self.meta;
        let _ = writeln!(
            s,
            "loadgen mode={} nodes={} rev={} machine={}",
            m.mode, m.nodes, m.git_rev, m.machine
        );
        for p in &self.phases {
            let _ = writeln!(s, "\n== {}", p.scenario);
            for h in &p.hists {
                let _ = writeln!(
                    s,
                    "  {:<48} n={:<6} p50={:>10.1} p99={:>10.1} p99.9={:>10.1} max={:>10.1} {}",
                    h.name, h.count, h.p50, h.p99, h.p999, h.max, h.unit
                );
            }
            for c in &p.scalars {
                let _ = writeln!(s, "  {:<48} {:>12.3} {}", c.name, c.value, c.unit);
            }
            for c in &p.checks {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(s, "  [{verdict}] {}: {}", c.name, c.detail);
            }
        }
        s
    }
}

/// A figure with as many decimals as it needs.
fn fmt_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The command line, shell-quoted where needed.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
// A report's timestamp; the engine never reads this clock.
#[allow(clippy::disallowed_methods)]
fn date_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `HEAD`'s short hash, with `-dirty` if the sources differ from it.
fn git_rev() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(rev) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "engine",
        "agent",
        "loadgen",
        "Cargo.lock",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{rev}-dirty")
    } else {
        rev
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .unwrap_or(0);
    format!("{cpu}, {} GiB", mem_kib / (1024 * 1024))
}
