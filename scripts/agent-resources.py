#!/usr/bin/env python3
"""Idle cost per agent, ours next to Go, in ONE mixed cluster.

Starts N agents on loopback (127.0.210.x): half Debian's Go Serf
(/usr/bin/serf), half ours (target/release/serf), interleaved, all joined into
one cluster through the first Go agent. Once a Go agent lists N alive members,
it idles for the measurement window and samples, per process:

  * RSS (VmRSS from /proc/PID/status, at the end of the window),
  * CPU: utime + stime from /proc/PID/stat over the window, as % of one core,
  * UDP packets sent per second (a tshark capture on lo, counted by source IP).

Both implementations see the same cluster and the same traffic, so the ratios
within one run hold even on this shared, noisy 2-core machine. Writes
results/agent.json and results/agent.md.

  scripts/agent-resources.py --nodes 16 64 --window 60
Requires: /usr/bin/serf, tshark, a release build (cargo build --release -p agent).
"""
import argparse, json, os, platform, signal, statistics, subprocess, sys, time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OURS = os.path.join(ROOT, "target", "release", "serf")
GO = "/usr/bin/serf"
TICK = os.sysconf("SC_CLK_TCK")


def ip(i):
    return f"127.0.210.{i + 1}"


def start(binary, name, addr, join=None):
    args = [binary, "agent", f"-node={name}", f"-bind={addr}:7946", f"-rpc-addr={addr}:7373"]
    if join:
        args.append(f"-join={join}")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def alive_count(addr):
    r = subprocess.run([GO, "members", f"-rpc-addr={addr}:7373", "-status=alive"],
                       capture_output=True, text=True, timeout=10)
    return len([l for l in r.stdout.splitlines() if l.strip()])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def anon_kib(pid):
    """Anonymous (heap, stacks) resident memory; the rest of RSS is file
    pages: the binary's code and libc, shared by every process mapping them."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size: shared pages (the binary, libc) divided among
    the processes mapping them — the fair per-agent cost when many agents
    of one implementation run on a host."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def measure(n, window):
    procs = []  # (impl, name, addr, popen)
    try:
        for i in range(n):
            impl = "go" if i % 2 == 0 else "ours"
            binary = GO if impl == "go" else OURS
            join = None if i == 0 else ip(0)
            p = start(binary, f"{impl}{i}", ip(i), join)
            procs.append((impl, f"{impl}{i}", ip(i), p))
            time.sleep(0.05 if i else 0.5)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if alive_count(ip(0)) == n:
                    break
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1)
        else:
            raise SystemExit(f"N={n}: cluster did not converge")
        dead = [name for (_, name, _, p) in procs if p.poll() is not None]
        if dead:
            raise SystemExit(f"N={n}: agents exited: {dead}")
        time.sleep(5)  # settle after the join storm
        cap = subprocess.Popen(["tshark", "-i", "lo", "-q", "-f", "udp and src net 127.0.210.0/24",
                                "-a", f"duration:{window}", "-T", "fields", "-e", "ip.src"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        t0 = time.time()
        cpu0 = {p.pid: cpu_seconds(p.pid) for (_, _, _, p) in procs}
        out, _ = cap.communicate(timeout=window + 60)
        elapsed = time.time() - t0
        cpu1 = {p.pid: cpu_seconds(p.pid) for (_, _, _, p) in procs}
        sent = {}
        for line in out.splitlines():
            sent[line.strip()] = sent.get(line.strip(), 0) + 1
        rows = []
        for impl, name, addr, p in procs:
            rows.append({
                "impl": impl, "name": name, "addr": addr,
                "rss_kib": rss_kib(p.pid),
                "pss_kib": pss_kib(p.pid),
                "anon_kib": anon_kib(p.pid),
                "cpu_pct": 100.0 * (cpu1[p.pid] - cpu0[p.pid]) / elapsed,
                "udp_pkts_per_s": sent.get(addr, 0) / elapsed,
            })
        if alive_count(ip(0)) != n:
            raise SystemExit(f"N={n}: a member was lost during the window")
        return rows, elapsed
    finally:
        for (_, _, _, p) in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for (_, _, _, p) in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def summarize(rows, impl):
    sel = [r for r in rows if r["impl"] == impl]
    return {
        "agents": len(sel),
        "rss_mib_median": statistics.median(r["rss_kib"] for r in sel) / 1024,
        "rss_mib_max": max(r["rss_kib"] for r in sel) / 1024,
        "pss_mib_median": statistics.median(r["pss_kib"] for r in sel) / 1024,
        "anon_mib_median": statistics.median(r["anon_kib"] for r in sel) / 1024,
        "cpu_pct_mean": statistics.mean(r["cpu_pct"] for r in sel),
        "udp_pkts_per_s_mean": statistics.mean(r["udp_pkts_per_s"] for r in sel),
    }


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--out", default=os.path.join(ROOT, "results"))
    a = ap.parse_args()
    for tool in (GO, OURS):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"missing {tool} (install serf / cargo build --release -p agent)")
    runs = []
    for n in a.nodes:
        print(f"N={n}: starting {n} agents ({n // 2} Go, {n - n // 2} ours)...", flush=True)
        rows, elapsed = measure(n, a.window)
        go, ours = summarize(rows, "go"), summarize(rows, "ours")
        runs.append({"nodes": n, "window_s": round(elapsed, 1), "go": go, "ours": ours, "agents": rows})
        print(f"N={n}: go rss {go['rss_mib_median']:.1f} MiB cpu {go['cpu_pct_mean']:.3f}% | "
              f"ours rss {ours['rss_mib_median']:.1f} MiB cpu {ours['cpu_pct_mean']:.3f}%", flush=True)
    meta = {
        "git_revision": git("rev-parse", "--short=12", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "go_serf": subprocess.run([GO, "version"], capture_output=True, text=True).stdout.splitlines()[0],
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "agent.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=2)
        f.write("\n")
    lines = ["# Idle agent cost: ours next to Go Serf", "",
             "One mixed cluster per N on loopback: half the agents are Debian's Go Serf 0.9.4 "
             "(`/usr/bin/serf`), half ours (`target/release/serf`), interleaved and joined through the "
             "first Go agent, all with default (LAN) settings. After every member is alive and 5 s of "
             "settling, the cluster idles for the window while we sample each process: RSS (`VmRSS`) at "
             "the end, PSS (the same with shared pages such as the binary and libc divided among the agents mapping them), CPU (`utime + stime`) over the window as % of one core, and UDP packets sent "
             "(tshark on `lo`, by source address).", "",
             "| N | window | impl | agents | RSS median | RSS max | of which anonymous | PSS median | CPU % of a core (mean) | UDP packets/s (mean) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for impl in ("go", "ours"):
            s = r[impl]
            lines.append(f"| {r['nodes']} | {r['window_s']} s | {impl} | {s['agents']} | "
                         f"{s['rss_mib_median']:.1f} MiB | {s['rss_mib_max']:.1f} MiB | {s['anon_mib_median']:.1f} MiB | "
                         f"{s['pss_mib_median']:.1f} MiB | "
                         f"{s['cpu_pct_mean']:.3f} | {s['udp_pkts_per_s_mean']:.2f} |")
    lines += ["", "Ratios (ours / Go, lower is better):", "",
              "| N | RSS (median) | anonymous (median) | PSS (median) | CPU (mean) | UDP packets/s |", "|---|---|---|---|---|---|"]
    for r in runs:
        g, o = r["go"], r["ours"]
        ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"
        lines.append(f"| {r['nodes']} | {ratio(o['rss_mib_median'], g['rss_mib_median'])} | "
                     f"{ratio(o['anon_mib_median'], g['anon_mib_median'])} | "
                     f"{ratio(o['pss_mib_median'], g['pss_mib_median'])} | "
                     f"{ratio(o['cpu_pct_mean'], g['cpu_pct_mean'])} | "
                     f"{ratio(o['udp_pkts_per_s_mean'], g['udp_pkts_per_s_mean'])} |")
    lines += ["", f"Revision {meta['git_revision']}{' (dirty)' if meta['git_dirty'] else ''}, "
              f"{meta['date_utc']}, {meta['machine']}, {meta['cpus']} CPUs, Go: {meta['go_serf']}.", "",
              "Reproduce: `cargo build --release -p agent && scripts/agent-resources.py --nodes 16 64 --window 60`.",
              "Reading the memory columns: RSS counts every resident page, including file pages — the "
              "executable's code and libc — that all agents of one implementation share. Our agent's anonymous "
              "memory (heap and stacks: the engine, runtime buffers, RPC server) is the implementation's own "
              "cost; the rest of its RSS is code pages of the binary and of libc/libm/ld.so, which a dynamically "
              "linked Rust binary cannot shed by trimming buffers. PSS divides shared pages among the processes "
              "mapping them, the fair per-agent figure when many agents run on one host.",
              "The packet rate is protocol behaviour (both speak the same SWIM schedule), so it should "
              "match; RSS and CPU are the implementation's cost."]
    with open(os.path.join(a.out, "agent.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote results/agent.md and results/agent.json")


if __name__ == "__main__":
    main()
