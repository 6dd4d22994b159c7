"""scripts/bench's driver: leadtrail and its peers, side by side, in one run.

Called by scripts/bench after the release builds; see that script for usage.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peers as peers  # noqa: E402


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


# --------------------------------------------------------------------------- events

def generate(leadtrail, path, count, seed):
    """The project's generator, enough leads for `count` events, cut to exactly `count` lines."""
    leads = max(10, count // 6)
    while True:
        raw = path + ".all"
        subprocess.run([leadtrail, "generate", "--leads", str(leads), "--seed", str(seed), "--output", raw],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(raw, "rb") as f:
            lines = f.read().splitlines()
        if len(lines) >= count:
            break
        leads = int(leads * count / max(1, len(lines)) * 1.1) + 10
    os.unlink(raw)
    lines = lines[:count]
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return [line.decode() for line in lines]


# --------------------------------------------------------------------------- disk

def disk_bandwidth(workdir):
    """Synced sequential writes with dd (oflag=dsync: each block is written and synced before the next)."""
    best = None
    results = {}
    for block, count in (("1M", 512), ("4M", 192)):
        target = os.path.join(workdir, f"dd-{block}.bin")
        proc = subprocess.run(["dd", "if=/dev/zero", f"of={target}", f"bs={block}", f"count={count}", "oflag=dsync"],
                              capture_output=True, text=True)
        os.unlink(target)
        m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", proc.stderr)
        if not m:
            raise RuntimeError("dd failed: " + proc.stderr)
        mbps = int(m.group(1)) / float(m.group(2)) / 1e6
        results[block] = mbps
        best = max(best or 0, mbps)
    return best, results


def free_page_reporting():
    """A note when a virtio balloon with free page reporting (feature bit 5) takes free guest memory back to the
    host (None otherwise). The host then backs a page again only when the guest next touches it, so writes that
    grow the page cache into such memory run at the host's first-touch speed: on the development VM a 1.2 MB
    pwrite took 2.8 ms into new memory against 0.5 ms into pages just freed."""
    for device in glob.glob("/sys/bus/virtio/devices/*"):
        try:
            with open(os.path.join(device, "device")) as f:
                is_balloon = int(f.read().strip(), 16) == 5
            with open(os.path.join(device, "features")) as f:
                features = f.read().strip()
        except (OSError, ValueError):
            continue
        if is_balloon and len(features) > 5 and features[5] == "1":
            return "the VM's balloon takes free memory back (free page reporting)"
    return None


def cpu_jiffies():
    """(all, stolen) CPU time of the machine since boot, in jiffies, from /proc/stat's `cpu` line (None where it
    cannot be read). Steal is the time a virtual CPU was ready to run while the host ran something else."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def steal_note(before, after):
    """A note on the CPU time the host took from this VM during the run, when it took any: on a shared host the
    runs' figures then vary with the neighbours' load, not only with the code."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    share = (after[1] - before[1]) / (after[0] - before[0])
    return f"the host took {share * 100:.1f}% of the VM's CPU time during the run (steal)" if share >= 0.001 else None


def page_cache_reclaim():
    """A note on the host's DAMON schemes that page out idle page cache, if one runs (None otherwise). Where one
    does, store files not read for a while leave the page cache whatever the free memory, so reads of them
    (timelines, scans) wait for the disk, while memory a process maps (the peers' own caches) stays when the
    scheme passes only unmapped pages, as the development VM's does."""
    def read(*path):
        with open(os.path.join(*path)) as f:
            return f.read().strip()
    found = []
    for kdamond in glob.glob("/sys/kernel/mm/damon/admin/kdamonds/[0-9]*"):
        for context in glob.glob(os.path.join(kdamond, "contexts", "[0-9]*")):
            for scheme in glob.glob(os.path.join(context, "schemes", "[0-9]*")):
                try:
                    if read(kdamond, "state") == "on" and read(scheme, "action") == "pageout":
                        aggregation_us = int(read(context, "monitoring_attrs", "intervals", "aggr_us"))
                        found.append(int(read(scheme, "access_pattern", "age", "min")) * aggregation_us / 1e6)
                except (OSError, ValueError):
                    continue
    if not found:
        return None
    return f"DAMON pages out page cache it samples as idle for {min(found):.0f} s"


# --------------------------------------------------------------------------- leadtrail

class Daemon:
    def __init__(self, leadtrail, workdir, name, keep_data=False, log_level=None):
        """Starts `leadtrail serve` on workdir/name (emptied first unless keep_data) and waits for a ping."""
        self.leadtrail = leadtrail
        self.data = os.path.join(workdir, name)
        self.socket = os.path.join(workdir, name + ".sock")
        if not keep_data:
            shutil.rmtree(self.data, ignore_errors=True)
        self.log = open(os.path.join(workdir, name + ".log"), "ab" if keep_data else "wb")
        started = time.time()
        command = [leadtrail, "serve", "--data-dir", self.data, "--socket", self.socket]
        if log_level:
            command += ["--log-level", log_level]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"leadtrail serve exited with {self.proc.returncode}; see {self.log.name}")
            if os.path.exists(self.socket):
                try:
                    if self.request({"op": "ping"}).get("ok"):
                        self.startup_s = time.time() - started
                        return
                except (OSError, RuntimeError, ValueError):
                    pass
            time.sleep(0.05)
        raise RuntimeError("leadtrail serve did not answer a ping")

    def request(self, body):
        """One request on a fresh connection; the answer as a dict."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket)
            data = json.dumps(body).encode()
            s.sendall(len(data).to_bytes(4, "big") + data)
            header = b""
            while len(header) < 4:
                chunk = s.recv(4 - len(header))
                if not chunk:
                    raise RuntimeError("the daemon closed the connection")
                header += chunk
            size = int.from_bytes(header, "big")
            answer = b""
            while len(answer) < size:
                chunk = s.recv(size - len(answer))
                if not chunk:
                    raise RuntimeError("the daemon closed the connection")
                answer += chunk
            return json.loads(answer)
        finally:
            s.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def settle():
    """Writes back every dirty page on the machine (the generated events, earlier runs' files) before a timed
    run, so no store's fsyncs wait behind another's writeback (on ext4 with a journal, a commit carries other files'
    data), and no store's queries share the disk and the cores with the writeback of the load before them."""
    os.sync()
    time.sleep(1)


def append_stages(log_path):
    """The daemon's debug lines for appends: p50 / p99 of the time validating and the time in the store (ms)."""
    validated, stored = [], []
    with open(log_path, errors="replace") as f:
        for line in f:
            if "request done" not in line or " op=append" not in line:
                continue
            fields = dict(re.findall(r"(\w+)=([0-9.]+)", line))
            if "validated_ms" in fields and "store_ms" in fields:
                validated.append(float(fields["validated_ms"]))
                stored.append(float(fields["store_ms"]))
    if not validated:
        return None
    validated.sort()
    stored.sort()
    return {"validated_p50_ms": peers.percentile(validated, 0.5), "validated_p99_ms": peers.percentile(validated, 0.99),
            "store_p50_ms": peers.percentile(stored, 0.5), "store_p99_ms": peers.percentile(stored, 0.99)}


def leadtrail_load(args, workdir, events_file, producers, rate=None, name=None, log_level=None):
    daemon = Daemon(args.leadtrail, workdir, name or f"leadtrail-{producers}", log_level=log_level)
    try:
        command = [args.load, "append", "--socket", daemon.socket, "--file", events_file,
                   "--connections", str(producers), "--window", str(args.window)]
        if rate:
            command += ["--rate", str(int(rate))]
        settle()
        cpu0 = peers.process_cpu([daemon.proc.pid])
        out = parse_kv(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        cpu = peers.process_cpu([daemon.proc.pid]) - cpu0
        if int(out["errors"]) != 0:
            raise RuntimeError("leadtrail refused batches: " + out.get("first_error", ""))
        # The daemon's own view of its writer: how fast its group writes went into the page cache, and its syncs.
        stats = daemon.request({"op": "stats"})
        result = {
            "store": "leadtrail", "producers": producers, "events": int(out["events"]),
            "events_per_s": float(out["events_per_s"]), "mb_per_s": float(out["mb_per_s"]),
            "p50_ms": float(out["p50_ms"]), "p99_ms": float(out["p99_ms"]), "seconds": float(out["seconds"]),
            "server_cpu_s": cpu,
            "client_cpu_ms_per_1000": float(out["client_cpu_ms_per_1000"]),
            "write_mb_per_s": stats.get("write_ms", {}).get("mb_per_s"),
            "sync_p50_ms": stats.get("sync_ms", {}).get("p50"),
        }
        return daemon, result
    except Exception:
        daemon.stop()
        raise


def leadtrail_queries(args, daemon, events_file, window):
    def lookups():
        counts = daemon.request({"op": "stats"}).get("lookups", {})
        return counts.get("answered_inline", 0), counts.get("handed_to_workers", 0)
    before = lookups()
    out = parse_kv(subprocess.run(
        [args.load, "query", "--socket", daemon.socket, "--file", events_file, "--lookups", str(args.lookups),
         "--scan-repeats", str(args.scan_repeats),
         "--from", window[0], "--to", window[1]], check=True, capture_output=True, text=True).stdout)
    after = lookups()
    return {
        "timeline_p50_ms": float(out["timeline_p50_ms"]), "timeline_p99_ms": float(out["timeline_p99_ms"]),
        "scan_hour_s": float(out["scan_hour_s"]), "scan_hour_events": int(out["scan_hour_events"]),
        "scan_recipient_s": float(out["scan_recipient_s"]), "scan_recipient_events": int(out["scan_recipient_events"]),
        # The daemon's own count (stats `lookups`): timelines answered from the page cache by the socket's thread,
        # and those handed to a worker because a page was not in the cache (the slow ones).
        "lookups_inline": after[0] - before[0], "lookups_handed": after[1] - before[1],
    }


def leadtrail_restart(args, workdir, daemon):
    """Stops the daemon, starts it again on the same data, and times the first scan by type it answers."""
    daemon.stop()
    restarted = Daemon(args.leadtrail, workdir, os.path.basename(daemon.data), keep_data=True)
    try:
        out = parse_kv(subprocess.run(
            [args.load, "scan", "--socket", restarted.socket, "--scan", '{"op":"scan","types":["recipient.*"]}', "--repeat", "1"],
            check=True, capture_output=True, text=True).stdout)
    finally:
        restarted.stop()
    return {"startup_s": restarted.startup_s, "first_recipient_s": float(out["scan_median_ms"]) / 1000}


def leadtrail_slow_scan(args, daemon):
    """A full-store scan read slowly (64 KiB reads, 2 ms apart): the daemon's resident memory must stay flat."""
    out = parse_kv(subprocess.run(
        [args.load, "slowscan", "--socket", daemon.socket, "--pid", str(daemon.proc.pid),
         "--read-bytes", "65536", "--pause-us", "2000"], check=True, capture_output=True, text=True).stdout)
    return {k: float(out[k]) for k in ("slowscan_s", "slowscan_events", "slowscan_bytes", "rss_before_mb", "rss_peak_mb", "rss_growth_mb")}


# --------------------------------------------------------------------------- table

def median_run(taken, key="events_per_s"):
    """The run whose `key` is the median of `taken` (the lower middle one for an even count)."""
    ordered = sorted(taken, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


def fmt_int(x):
    return f"{x:,.0f}"


def fmt_ms(x):
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def fmt_s(x):
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def fmt_bytes(x):
    return f"{x / 1e6:.0f} MB"


def ratio(a, b):
    return f"{a / b:.1f}x" if b else "n/a"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window", type=int, default=4, help="append frames in flight per producer connection")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of append measurements (every store, 1 and 4 producers, in each round); "
                             "the table shows the median run")
    parser.add_argument("--half-peak-events", type=int, default=600_000,
                        help="events in each run at half of the peak (at least --events): its p99 is taken over "
                             "this many batches of 1,000, so a fresh daemon's first batches and each segment's "
                             "seal weigh in as often as they come in a long run")
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--scan-repeats", type=int, default=5,
                        help="runs of each scan, in every store; the table shows the median")
    parser.add_argument("--peers", default="sqlite,redis,postgres")
    parser.add_argument("--leadtrail", required=True)
    parser.add_argument("--load", required=True)
    parser.add_argument("--workdir")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="leadtrail-bench-", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    log(f"work directory {workdir}")
    started = datetime.datetime.now(datetime.timezone.utc)
    jiffies_at_start = cpu_jiffies()
    wanted = set(args.peers.split(",")) if args.peers else set()
    results = {"appends": [], "queries": {}, "disk_bytes": {}}
    runs = {}  # (store, producers) -> every run's result, in the order taken
    pg = None
    daemons = []
    try:
        events_file = os.path.join(workdir, "events.ndjson")
        log(f"generating {args.events:,} events with `leadtrail generate`")
        lines = generate(args.leadtrail, events_file, args.events, args.seed)
        raw_bytes = sum(len(line.encode()) for line in lines)
        rows = peers.rows_from_lines(lines)
        log(f"{len(lines):,} events, {raw_bytes / len(lines):.0f} B each on average, {raw_bytes / 1e6:.0f} MB of JSON")
        half_events_file, half_events = events_file, len(lines)
        if args.half_peak_events > args.events:
            half_events_file = os.path.join(workdir, "events-half-peak.ndjson")
            log(f"generating {args.half_peak_events:,} events for the runs at half of the peak")
            half_events = len(generate(args.leadtrail, half_events_file, args.half_peak_events, args.seed + 1))

        # Queries: random leads, and a one-hour window in the middle of the events' time range.
        rng = random.Random(args.seed)
        leads = sorted({r[1] for r in rows})
        sample_leads = [rng.choice(leads) for _ in range(args.lookups + 50)]
        stamps = sorted(r[3] for r in rows)
        middle = datetime.datetime.fromisoformat(stamps[len(stamps) // 2].replace("Z", "+00:00"))
        hour_start = middle.replace(minute=0, second=0, microsecond=0)
        window = (hour_start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                  (hour_start + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))

        log("disk: dd oflag=dsync")
        disk_mbps, disk_detail = disk_bandwidth(workdir)
        results["disk"] = {"best_mb_per_s": disk_mbps, **{f"bs_{k}": v for k, v in disk_detail.items()}}
        log(f"disk synced sequential writes: {disk_detail} MB/s")

        # Every store starts empty for each run (so no run sees the previous one's events as duplicates), and every
        # append measurement is taken `--repeats` times. The stores take their runs in rounds: in each round every
        # store is measured with 1 and with 4 producers, the order of the stores turned by one from round to round,
        # so a stretch where this shared machine runs slower falls on all of them alike. The table shows each
        # measurement's median run.
        if "postgres" in wanted:
            pg = peers.Postgres(workdir)
            pg.start()

        def run_leadtrail(rep, producers, last):
            log(f"leadtrail, {producers} producer connection(s), run {rep + 1} of {args.repeats}")
            daemon, result = leadtrail_load(args, workdir, events_file, producers)
            daemons.append(daemon)
            runs.setdefault(("leadtrail", producers), []).append(result)
            log(f"  {result['events_per_s']:,.0f} events/s, p99 {result['p99_ms']:.1f} ms")
            if producers == 4 and last:
                log("leadtrail queries")
                settle()
                results["queries"]["leadtrail"] = leadtrail_queries(args, daemon, events_file, window)
                log("leadtrail: a full scan read slowly, daemon RSS sampled")
                results["slow_scan"] = leadtrail_slow_scan(args, daemon)
                log(f"  RSS {results['slow_scan']['rss_before_mb']:.0f} MB before, peak {results['slow_scan']['rss_peak_mb']:.0f} MB")
                log("leadtrail: restarted, and the first recipient.* scan after it")
                results["restart"] = leadtrail_restart(args, workdir, daemon)
                log(f"  start {results['restart']['startup_s']:.2f} s, first scan {results['restart']['first_recipient_s'] * 1000:.0f} ms")
            daemon.stop()
            if last:
                results["disk_bytes"][f"leadtrail-{producers}"] = peers.du(daemon.data)

        def run_peer(name, load, queries, rep, producers, last):
            """One run of a peer; after its last 4-producer run, its queries (None: it has no indexes for them)."""
            log(f"{name}, {producers} producer(s), run {rep + 1} of {args.repeats}")
            settle()
            result = load(producers)
            runs.setdefault((name, producers), []).append(result)
            results["disk_bytes"][f"{name}-{producers}"] = result["disk_bytes"]
            log(f"  {result['events_per_s']:,.0f} events/s, p99 {result['p99_ms']:.1f} ms")
            if queries and producers == 4 and last:
                settle()
                results["queries"][name] = queries(result)

        measured = [("leadtrail", run_leadtrail)]
        if "sqlite" in wanted:
            measured.append(("SQLite", lambda rep, p, last: run_peer(
                "SQLite", lambda n: peers.sqlite_load(workdir, rows, raw_bytes, n),
                lambda r: peers.sqlite_queries(r["path"], sample_leads, window, args.lookups, args.scan_repeats),
                rep, p, last)))
        if "redis" in wanted:
            measured.append(("Redis Streams", lambda rep, p, last: run_peer(
                "Redis Streams", lambda n: peers.redis_load(workdir, rows, raw_bytes, n), None, rep, p, last)))
        if "postgres" in wanted:
            measured.append(("PostgreSQL", lambda rep, p, last: run_peer(
                "PostgreSQL", lambda n: peers.postgres_load(pg, rows, raw_bytes, n),
                lambda r: peers.postgres_queries(pg, sample_leads, window, args.lookups, args.scan_repeats),
                rep, p, last)))
        for rep in range(args.repeats):
            last = rep == args.repeats - 1
            turn = rep % len(measured)
            log(f"round {rep + 1} of {args.repeats}: " + ", ".join(name for name, _ in measured[turn:] + measured[:turn]))
            for _, run in measured[turn:] + measured[:turn]:
                for producers in (1, 4):
                    run(rep, producers, last)
        shutil.rmtree(os.path.join(workdir, "sqlite-1"), ignore_errors=True)

        peak = max(median_run(runs[("leadtrail", p)])["events_per_s"] for p in (1, 4))
        half_runs = []
        for rep in range(args.repeats):
            log(f"leadtrail at half of its median peak ({peak / 2:,.0f} events/s), 4 producers, run {rep + 1} of {args.repeats}")
            # At debug level the daemon logs each append's time validating and in the store (one line per batch).
            daemon, half = leadtrail_load(args, workdir, half_events_file, 4, rate=peak / 2, name="leadtrail-half",
                                          log_level="debug")
            daemon.stop()
            half["stages"] = append_stages(daemon.log.name)
            half_runs.append(half)
            log(f"  p50 {half['p50_ms']:.2f} ms, p99 {half['p99_ms']:.2f} ms")
            if half["stages"]:
                st = half["stages"]
                log(f"  in the daemon: validating p50 {st['validated_p50_ms']:.2f} / p99 {st['validated_p99_ms']:.2f} ms, "
                    f"in the store (group commit, write, sync) p50 {st['store_p50_ms']:.2f} / p99 {st['store_p99_ms']:.2f} ms")
        results["half_peak"] = median_run(half_runs, key="p99_ms")
        results["half_peak_runs"] = half_runs
        results["half_peak_events"] = half_events
        for name in ("leadtrail-1", "leadtrail-half"):
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    finally:
        for d in daemons:
            d.stop()
        if pg:
            pg.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    # ------------------------------------------------------------------ the table
    # Each (store, producers) measurement is represented by its median run; the others are kept for the notes.
    for key, taken in runs.items():
        chosen = dict(median_run(taken))
        chosen["runs_events_per_s"] = [r["events_per_s"] for r in taken]
        chosen["runs_write_mb_per_s"] = [r.get("write_mb_per_s") for r in taken]
        results["appends"].append(chosen)
    by = {(r["store"], r["producers"]): r for r in results["appends"]}
    stores = []
    for r in results["appends"]:
        if r["store"] not in stores:
            stores.append(r["store"])
    peer_names = [s for s in stores if s != "leadtrail"]

    def best_peer(producers):
        candidates = [by[(s, producers)] for s in peer_names if (s, producers) in by]
        return max(candidates, key=lambda r: r["events_per_s"]) if candidates else None

    query_peers = [s for s in peer_names if s in results["queries"]]

    header = ["", *stores]
    rows_out = []

    def add(label, fn):
        rows_out.append([label, *[fn(s) for s in stores]])

    for producers in (1, 4):
        add(f"append, {producers} producer{'s' if producers > 1 else ''}: events/s",
            lambda s: fmt_int(by[(s, producers)]["events_per_s"]) if (s, producers) in by else "-")
        add(f"append, {producers} producer{'s' if producers > 1 else ''}: MB/s",
            lambda s: f"{by[(s, producers)]['mb_per_s']:.1f}" if (s, producers) in by else "-")
        add(f"append, {producers} producer{'s' if producers > 1 else ''}: ack p50 / p99 ms",
            lambda s: f"{fmt_ms(by[(s, producers)]['p50_ms'])} / {fmt_ms(by[(s, producers)]['p99_ms'])}" if (s, producers) in by else "-")
    add("server CPU ms per 1,000 events (4 producers)",
        lambda s: f"{by[(s, 4)]['server_cpu_s'] / by[(s, 4)]['events'] * 1e6:.0f}" if (s, 4) in by and "server_cpu_s" in by[(s, 4)] else "-")
    add("daemon: group writes into the page cache MB/s, sync p50 ms (4 producers)",
        lambda s: f"{by[(s, 4)]['write_mb_per_s']:,.0f}, {by[(s, 4)]['sync_p50_ms']:.2f}"
        if s == "leadtrail" and by[(s, 4)].get("write_mb_per_s") and by[(s, 4)].get("sync_p50_ms") is not None else "-")
    add(f"ack p50 / p99 ms at half of peak (4 producers, {results['half_peak_events'] // 1000:,} batches)",
        lambda s: f"{fmt_ms(results['half_peak']['p50_ms'])} / {fmt_ms(results['half_peak']['p99_ms'])}" if s == "leadtrail" else "-")
    stages = results.get("half_peak", {}).get("stages")
    if stages:
        add("  of which validating / in the store, p50 ms",
            lambda s: f"{fmt_ms(stages['validated_p50_ms'])} / {fmt_ms(stages['store_p50_ms'])}" if s == "leadtrail" else "-")
    q = results["queries"]
    add("timeline of one lead p50 / p99 ms",
        lambda s: f"{q[s]['timeline_p50_ms']:.2f} / {q[s]['timeline_p99_ms']:.2f}" if s in q else "n/a")
    scans = f", median of {args.scan_repeats}" if args.scan_repeats > 1 else ""
    add(f"scan one hour (events{scans})",
        lambda s: f"{fmt_s(q[s]['scan_hour_s'])} ({fmt_int(q[s]['scan_hour_events'])})" if s in q else "n/a")
    add(f"scan all, types recipient.* (events{scans})",
        lambda s: f"{fmt_s(q[s]['scan_recipient_s'])} ({fmt_int(q[s]['scan_recipient_events'])})" if s in q else "n/a")
    if "restart" in results:
        restart = results["restart"]
        add("after a restart: start s / first recipient.* scan",
            lambda s: f"{restart['startup_s']:.2f} / {fmt_s(restart['first_recipient_s'])}" if s == "leadtrail" else "-")
    if "slow_scan" in results:
        slow = results["slow_scan"]
        add("daemon RSS MB during a full scan read slowly (before / peak)",
            lambda s: f"{slow['rss_before_mb']:.0f} / {slow['rss_peak_mb']:.0f}" if s == "leadtrail" else "-")
    add("bytes on disk (vs raw JSON)",
        lambda s: f"{fmt_bytes(results['disk_bytes'][s + '-4'])} ({(results['disk_bytes'][s + '-4'] / raw_bytes - 1) * 100:+.0f}%)")

    widths = [max(len(str(row[i])) for row in [header, *rows_out]) for i in range(len(header))]
    lines_out = []
    lines_out.append("| " + " | ".join(str(h).ljust(widths[i]) for i, h in enumerate(header)) + " |")
    lines_out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows_out:
        lines_out.append("| " + " | ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)) + " |")

    ratios = []
    for producers in (1, 4):
        lt = by[("leadtrail", producers)]
        bp = best_peer(producers)
        line = f"- {producers} producer{'s' if producers > 1 else ''}: leadtrail {fmt_int(lt['events_per_s'])} events/s"
        if bp:
            line += f" = {ratio(lt['events_per_s'], bp['events_per_s'])} the best peer ({bp['store']}, {fmt_int(bp['events_per_s'])} events/s)"
        line += f"; {lt['mb_per_s'] / disk_mbps * 100:.0f}% of the disk's synced sequential writes ({disk_mbps:,.0f} MB/s)"
        if bp:
            # 10x the best peer is also a write rate: the same events, at leadtrail's bytes on disk per event.
            needed = 10 * bp["events_per_s"] * results["disk_bytes"]["leadtrail-4"] / len(lines) / 1e6
            line += f"; 10x the best peer would write {needed:,.0f} MB/s, {needed / disk_mbps * 100:.0f}% of them"
        ratios.append(line)
    # Where the CPU went: on a machine whose cores are all busy, the daemon's and the load client's CPU per event
    # set the ceiling, and 10x the best peer is a budget for the two together.
    cores = os.cpu_count() or 1
    budget = []
    for producers in (1, 4):
        lt = by[("leadtrail", producers)]
        daemon_ms = lt["server_cpu_s"] / lt["events"] * 1e6
        together = daemon_ms + lt["client_cpu_ms_per_1000"]
        part = (f"{producers} producer{'s' if producers > 1 else ''}: daemon {daemon_ms:.2f} ms, load client "
                f"{lt['client_cpu_ms_per_1000']:.2f} ms, so at most {fmt_int(cores * 1e6 / together)} events/s on {cores} busy cores")
        bp = best_peer(producers)
        if bp:
            part += f"; 10x {bp['store']} needs the two under {cores * 1e6 / (10 * bp['events_per_s']):.2f} ms"
        budget.append(part)
    ratios.append("- CPU per 1,000 events: " + "; ".join(budget))
    if args.repeats > 1:
        ratios.append(f"- appends are the median of {args.repeats} runs each, taken in rounds (every store in each, "
                  f"the order turned by one from round to round); every run's events/s:")
        for producers in (1, 4):
            ratios.append(f"  - {producers} producer{'s' if producers > 1 else ''}: " + "; ".join(
                f"{s} " + ", ".join(fmt_int(x) for x in by[(s, producers)]["runs_events_per_s"])
                for s in stores if (s, producers) in by))
        ratios.append("  - leadtrail's group writes into the page cache in those runs, MB/s (1 producer; 4): " + "; ".join(
            ", ".join(f"{x:,.0f}" if x else "-" for x in by[("leadtrail", producers)]["runs_write_mb_per_s"])
            for producers in (1, 4)))
        def half_run(r):
            writes = f" ({r['write_mb_per_s']:,.0f})" if r.get("write_mb_per_s") else ""
            return f"{fmt_ms(r['p50_ms'])} / {fmt_ms(r['p99_ms'])}{writes}"
        ratios.append(f"- at half of the peak, the run with the median p99 of {args.repeats}; every run's p50 / p99 ms "
                      "(and its group writes into the page cache, MB/s): " +
                      ", ".join(half_run(r) for r in results["half_peak_runs"]))
    if "leadtrail" in q:
        lq = q["leadtrail"]
        ratios.append(f"- leadtrail's timelines (warm-up included): {fmt_int(lq['lookups_inline'])} answered from the page cache "
                      f"by the socket's thread, {fmt_int(lq['lookups_handed'])} handed to a worker (here: a page no longer in the cache)")
        if query_peers:
            def against_fastest(key):
                fastest = min(query_peers, key=lambda s: q[s][key])
                return f"{q[fastest][key] / lq[key]:.2f} ({fastest})"

            ratios.append(
                "- reads, the fastest peer's time / leadtrail's (above 1: leadtrail faster; for each read the peer "
                f"that was fastest at it): timeline p99 {against_fastest('timeline_p99_ms')}, one-hour scan "
                f"{against_fastest('scan_hour_s')}, recipient.* scan {against_fastest('scan_recipient_s')}")
            best_disk = min((results["disk_bytes"][s + "-4"] for s in peer_names), default=None)
            if best_disk:
                ratios.append(f"- bytes on disk: leadtrail / smallest peer = {results['disk_bytes']['leadtrail-4'] / best_disk:.2f}")

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    load = os.getloadavg()
    print()
    print(f"leadtrail scripts/bench, {started.strftime('%Y-%m-%d %H:%M UTC')}: {len(lines):,} generated events "
          f"(avg {raw_bytes / len(lines):.0f} B), batches of 1,000, every ack after fsync")
    print(f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
          f"disk dd oflag=dsync: {', '.join(f'{k} blocks {v:,.0f} MB/s' for k, v in disk_detail.items())}; "
          f"load average at the end {load[0]:.1f}"
          + "".join(f"; {note}" for note in (steal_note(jiffies_at_start, cpu_jiffies()), page_cache_reclaim(),
                                              free_page_reporting()) if note))
    print()
    print("\n".join(lines_out))
    print()
    print("\n".join(ratios))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"started": started.isoformat(), "raw_bytes": raw_bytes, **results}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
