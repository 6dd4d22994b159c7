"""Peer stores for scripts/bench: SQLite, Redis Streams and PostgreSQL.

Each peer gets the same events as leadtrail, in batches of 1,000, each batch
acknowledged only after the store made it durable:

- SQLite: WAL, synchronous=FULL, one `BEGIN IMMEDIATE ... COMMIT` per batch
  (executemany), through Python's sqlite3 (the C library does the work).
- Redis Streams: appendonly with appendfsync always, one pipelined run of 1,000
  XADD per batch on a raw Unix socket (Redis syncs the AOF before it replies).
- PostgreSQL: synchronous_commit=on, fsync=on, one COPY of 1,000 rows and a
  COMMIT per batch, through psycopg2 (libpq).

To measure the databases and not the Python client, everything a client would
build is built before the clock starts: the rows (event_id, lead_id, type,
timestamp and the raw JSON extracted from each line), the RESP commands and
the COPY text. leadtrail gets no such help: its daemon validates and indexes
the raw NDJSON lines of each frame inside the timed region.

Peers keep the indexes their reads need, as leadtrail does: a unique event_id
(dedupe), lead_id (timeline) and timestamp (time windows).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import socket
import sqlite3
import subprocess
import time

BATCH = 1000


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(-(-len(sorted_values) * p // 1)) - 1))
    return sorted_values[rank]


def median(values):
    """The median of a list of timings, the same rank rule as leadtrail-load's (the middle of an odd count)."""
    return percentile(sorted(values), 0.5)


def rows_from_lines(lines):
    rows = []
    for line in lines:
        event = json.loads(line)
        rows.append((event["event_id"], event["lead_id"], event["type"], event["timestamp"], line))
    return rows


def deal(batches, producers):
    return [batches[i::producers] for i in range(producers)]


def run_producers(worker, shares, setup_args):
    """Runs one process per share; each returns a list of per-batch latencies (s)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    barrier = ctx.Barrier(len(shares) + 1)
    procs = [ctx.Process(target=_producer_main, args=(worker, share, setup_args, barrier, queue)) for share in shares]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    results = [queue.get() for _ in procs]
    seconds = time.perf_counter() - start
    for p in procs:
        p.join()
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise RuntimeError(errors[0])
    latencies = sorted(x for r in results for x in r)
    return seconds, latencies


def _producer_main(worker, share, setup_args, barrier, queue):
    try:
        state = worker.connect(*setup_args)
        barrier.wait()
        latencies = []
        for batch in share:
            t0 = time.perf_counter()
            worker.append(state, batch)
            latencies.append(time.perf_counter() - t0)
        worker.close(state)
        queue.put(latencies)
    except Exception as error:  # reported by the parent
        try:
            barrier.abort()
        except Exception:
            pass
        queue.put(f"{worker.__name__}: {error!r}")


def summary(name, events, event_bytes, seconds, latencies, producers):
    return {
        "store": name,
        "producers": producers,
        "events": events,
        "events_per_s": events / seconds,
        "mb_per_s": event_bytes / seconds / 1e6,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "seconds": seconds,
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pids):
    """User + system CPU seconds used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLOCK_TICKS


def process_cpu_total(pid):
    """CPU seconds of a process, its live children, and its reaped children (cutime, cstime)."""
    total = process_cpu(children_of(pid))
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        pass
    return total


def children_of(parent):
    out = [parent]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


# --------------------------------------------------------------------------- SQLite

class SQLiteWorker:
    __name__ = "sqlite"

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        lead_id TEXT NOT NULL,
        type TEXT NOT NULL,
        ts TEXT NOT NULL,
        body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS events_lead ON events(lead_id);
    CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
    """

    @staticmethod
    def open(path):
        db = sqlite3.connect(path, isolation_level=None, timeout=600)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    @classmethod
    def connect(cls, path):
        return cls.open(path)

    @staticmethod
    def append(db, rows):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO events(event_id, lead_id, type, ts, body) VALUES (?,?,?,?,?)", rows)
        db.execute("COMMIT")

    @staticmethod
    def close(db):
        db.close()


def sqlite_load(workdir, rows, event_bytes, producers):
    directory = os.path.join(workdir, f"sqlite-{producers}")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    path = os.path.join(directory, "events.db")
    db = SQLiteWorker.open(path)
    db.executescript(SQLiteWorker.SCHEMA)
    db.close()
    batches = [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]
    before = os.times()
    seconds, latencies = run_producers(SQLiteWorker, deal(batches, producers), (path,))
    after = os.times()
    result = summary("SQLite", len(rows), event_bytes, seconds, latencies, producers)
    # SQLite runs inside the producers: their CPU (Python's binding loop included).
    result["server_cpu_s"] = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
    db.close()
    if stored != len(rows):
        raise RuntimeError(f"SQLite stored {stored} of {len(rows)} events")
    result["disk_bytes"] = du(directory)
    result["path"] = path
    return result


def sqlite_queries(path, leads, window, lookups, scan_repeats=1):
    db = sqlite3.connect(path)
    times = []
    for lead in leads[:50]:
        db.execute("SELECT body FROM events WHERE lead_id=? ORDER BY ts, seq", (lead,)).fetchall()
    for lead in leads[:lookups]:
        t0 = time.perf_counter()
        db.execute("SELECT body FROM events WHERE lead_id=? ORDER BY ts, seq", (lead,)).fetchall()
        times.append(time.perf_counter() - t0)
    times.sort()

    def scan(query, *params):
        runs = []
        for _ in range(scan_repeats):
            t0 = time.perf_counter()
            rows = db.execute(query, params).fetchall()
            runs.append(time.perf_counter() - t0)
        return median(runs), rows

    hour_s, hour = scan("SELECT body FROM events WHERE ts >= ? AND ts < ? ORDER BY seq", *window)
    recipient_s, recipient = scan("SELECT body FROM events WHERE type LIKE 'recipient.%' ORDER BY seq")
    db.close()
    return {
        "timeline_p50_ms": percentile(times, 0.5) * 1000, "timeline_p99_ms": percentile(times, 0.99) * 1000,
        "scan_hour_s": hour_s, "scan_hour_events": len(hour),
        "scan_recipient_s": recipient_s, "scan_recipient_events": len(recipient),
    }


# --------------------------------------------------------------------------- Redis

def resp(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        if isinstance(p, str):
            p = p.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


class RedisWorker:
    __name__ = "redis"

    @staticmethod
    def connect(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return [s, bytearray()]

    @staticmethod
    def append(state, batch):
        s, buf = state
        payload, count = batch
        s.sendall(payload)
        # Each XADD answers one bulk string: "$N\r\n<id>\r\n" (two lines); an error is one "-..." line.
        del buf[:]
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("redis closed the connection")
            buf.extend(chunk)
            if buf[:1] == b"-" or b"\r\n-" in buf:
                raise RuntimeError("redis error: " + bytes(buf[:200]).decode(errors="replace"))
            if buf.count(b"\r\n") >= 2 * count:
                return

    @staticmethod
    def close(state):
        state[0].close()


def redis_start(workdir):
    directory = os.path.join(workdir, "redis")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    sock = os.path.join(directory, "redis.sock")
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", directory,
         "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
         "--logfile", os.path.join(directory, "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock):
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sock)
                s.sendall(resp("PING"))
                if s.recv(100).startswith(b"+PONG"):
                    s.close()
                    return proc, sock, directory
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def redis_command(sock, *parts):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(resp(*parts))
    reply = s.recv(1 << 16)
    s.close()
    return reply


def redis_load(workdir, rows, event_bytes, producers):
    proc, sock, directory = redis_start(workdir)
    try:
        batches = []
        for i in range(0, len(rows), BATCH):
            chunk = rows[i:i + BATCH]
            payload = b"".join(
                resp("XADD", "events", "*", "event_id", r[0], "lead_id", r[1], "type", r[2], "ts", r[3], "body", r[4])
                for r in chunk)
            batches.append((payload, len(chunk)))
        cpu0 = process_cpu([proc.pid])
        seconds, latencies = run_producers(RedisWorker, deal(batches, producers), (sock,))
        result = summary("Redis Streams", len(rows), event_bytes, seconds, latencies, producers)
        result["server_cpu_s"] = process_cpu([proc.pid]) - cpu0
        length = redis_command(sock, "XLEN", "events")
        if int(length[1:].split(b"\r\n")[0]) != len(rows):
            raise RuntimeError(f"redis stored {length!r}, expected {len(rows)}")
        result["disk_bytes"] = du(os.path.join(directory, "appendonlydir"))
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- PostgreSQL

def copy_escape(value):
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class PostgresWorker:
    __name__ = "postgres"

    @staticmethod
    def connect(host, port):
        import psycopg2
        return psycopg2.connect(host=host, port=port, dbname="postgres", user="postgres")

    @staticmethod
    def append(conn, copy_text):
        import io
        with conn.cursor() as cur:
            cur.copy_expert("COPY events(event_id, lead_id, type, ts, body) FROM STDIN", io.StringIO(copy_text))
        conn.commit()

    @staticmethod
    def close(conn):
        conn.close()


class Postgres:
    """A throwaway cluster: initdb in a temp dir, run as the `postgres` user, Unix socket only."""

    def __init__(self, workdir):
        self.directory = os.path.join(workdir, "postgres")
        shutil.rmtree(self.directory, ignore_errors=True)
        os.makedirs(self.directory)
        self.data = os.path.join(self.directory, "data")
        self.socket_dir = self.directory
        self.port = 5432
        self.bin = self._bindir()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user
            shutil.chown(self.directory, "postgres", "postgres")
            os.chmod(workdir, 0o755)

    @staticmethod
    def _bindir():
        base = "/usr/lib/postgresql"
        if os.path.isdir(base):
            versions = sorted(os.listdir(base), key=lambda v: int(v) if v.isdigit() else 0)
            if versions:
                return os.path.join(base, versions[-1], "bin")
        return os.path.dirname(shutil.which("pg_ctl") or "/usr/bin/pg_ctl")

    def _as_postgres(self, args, **kwargs):
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)

    def start(self):
        self._as_postgres([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        options = (f"-k {self.socket_dir} -p {self.port} -c listen_addresses='' -c fsync=on -c synchronous_commit=on "
                   f"-c full_page_writes=on -c wal_sync_method=fdatasync -c shared_buffers=512MB -c max_wal_size=4GB")
        self._as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", options,
                           "-l", os.path.join(self.directory, "log"), "-w", "start"])

    def stop(self):
        try:
            self._as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass

    def connect(self):
        return PostgresWorker.connect(self.socket_dir, self.port)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def reset_table(self):
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS events")
            cur.execute("""CREATE TABLE events (
                seq BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, lead_id TEXT NOT NULL,
                type TEXT NOT NULL, ts TEXT NOT NULL, body TEXT NOT NULL)""")
            cur.execute("CREATE INDEX events_lead ON events(lead_id)")
            cur.execute("CREATE INDEX events_ts ON events(ts)")
            cur.execute("CHECKPOINT")
        conn.close()

    def table_bytes(self):
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_total_relation_size('events')")
            size = cur.fetchone()[0]
        conn.close()
        return size


def postgres_load(pg, rows, event_bytes, producers):
    pg.reset_table()
    batches = []
    for i in range(0, len(rows), BATCH):
        batches.append("".join("\t".join(copy_escape(v) for v in r) + "\n" for r in rows[i:i + BATCH]))
    postmaster = pg.postmaster_pid()
    cpu0 = process_cpu_total(postmaster)
    seconds, latencies = run_producers(PostgresWorker, deal(batches, producers), (pg.socket_dir, pg.port))
    result = summary("PostgreSQL", len(rows), event_bytes, seconds, latencies, producers)
    time.sleep(0.3)  # backends exit with their connections; the postmaster then counts them in its children's times
    result["server_cpu_s"] = process_cpu_total(postmaster) - cpu0
    conn = pg.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        stored = cur.fetchone()[0]
    conn.close()
    if stored != len(rows):
        raise RuntimeError(f"PostgreSQL stored {stored} of {len(rows)} events")
    result["disk_bytes"] = pg.table_bytes()
    return result


def postgres_queries(pg, leads, window, lookups, scan_repeats=1):
    import io
    conn = pg.connect()
    conn.autocommit = True
    times = []
    with conn.cursor() as cur:
        cur.execute("ANALYZE events")
        for lead in leads[:50]:
            cur.execute("SELECT body FROM events WHERE lead_id=%s ORDER BY ts, seq", (lead,))
            cur.fetchall()
        for lead in leads[:lookups]:
            t0 = time.perf_counter()
            cur.execute("SELECT body FROM events WHERE lead_id=%s ORDER BY ts, seq", (lead,))
            cur.fetchall()
            times.append(time.perf_counter() - t0)
        times.sort()

        def copy_out(query):
            runs = []
            for _ in range(scan_repeats):
                sink = io.StringIO()
                t0 = time.perf_counter()
                cur.copy_expert(f"COPY ({query}) TO STDOUT", sink)
                runs.append(time.perf_counter() - t0)
            return median(runs), sink.getvalue().count("\n")

        hour_s, hour_n = copy_out(
            f"SELECT body FROM events WHERE ts >= '{window[0]}' AND ts < '{window[1]}' ORDER BY seq")
        rec_s, rec_n = copy_out("SELECT body FROM events WHERE type LIKE 'recipient.%' ORDER BY seq")
    conn.close()
    return {
        "timeline_p50_ms": percentile(times, 0.5) * 1000, "timeline_p99_ms": percentile(times, 0.99) * 1000,
        "scan_hour_s": hour_s, "scan_hour_events": hour_n,
        "scan_recipient_s": rec_s, "scan_recipient_events": rec_n,
    }
