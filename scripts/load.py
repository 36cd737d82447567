#!/usr/bin/env python3
"""The load harness: jwt-issuer's throughput, latency and memory under load, beside the
machine's own limits measured in the same run (and, with --peers, djangorestframework-simplejwt
and node-oidc-provider on the same machine).

    cargo build --release
    python3 scripts/load.py                       # SQLite: every row, the mixed workload, RSS
    python3 scripts/load.py --postgres postgres://postgres@127.0.0.1:5432   # PostgreSQL too
    python3 scripts/load.py --peers               # simplejwt and oidc-provider beside us
    python3 scripts/load.py memory                # the memory bound only; exit 1 if broken
    python3 scripts/load.py login                 # the login rows alone, each between two
                                                  # measurements of the argon2 limit (with
                                                  # --postgres: on both backends)

Needs wrk (Debian: apt-get install wrk), python3 and, for the limits, openssl; --peers also
needs pip and npm (it installs the peers into a temporary folder). Every row is `wrk -t2 -c32`
for 10 s after a 3 s warm-up and a 1 s pause (for what the warm-up left in flight), on
loopback. The server runs with login throttling relaxed (one address logs in thousands of
times); everything else is as shipped.

Rows: password login (argon2id m=19456 t=2 p=1); refresh with RS256 and ES256 keys (each
request presents a live refresh token and gets its successor); JWKS; the mixed workload (a
login flood of 32 connections, plus a steady 200 JWKS reads/s and 100 refreshes/s whose p99
is measured, each from a wrk of its own on a fixed schedule). RSS: at start-up; idle, at rest
after short warm-up bursts of each kind (which open every pooled database connection and fill
its caches); the peak over every row; and after the load, once back within 10% of idle or
after 15 s. The memory bound: the peak never above 64 MiB + hashing threads x
19 MiB, after within 10% of idle, and idle less than one argon2 area (19 MiB) above start-up,
since idle hashing threads hold no argon2 memory. Beside every row: the CPU of the run's own
processes (jwt-issuer and its hashing threads, PostgreSQL, wrk, the harness, the peers) and the
machine's idle share, CPU stolen by the hypervisor, CPU of processes outside the run, and the
disks' write and flush latency (the worst 100 ms interval too, and the longest time the disks
completed nothing), to tell a slow row from a slow VM. For the login floods, the CPU per login
by kind (hashing, the service's other threads, PostgreSQL, the rest) beside the most that all
but the hashing may take for the hashing threads to get 90% of the machine.
"""
import argparse
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LUA = os.path.join(HERE, "load")
ARGON2_MIB = 19
SECONDS, WARMUP, CONNS, THREADS = 10, 3, 32, 2
SETTLE = 1.0  # seconds between a warm-up and its measured run
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_form(url, form, timeout=60):
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


class Server:
    """One jwt-issuer process on a fresh database."""

    def __init__(self, binary, database, alg, work, keys=None, extra=()):
        """`keys`: a keys directory to share with other instances (default: its own);
        `extra`: further `serve` options."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.keys = keys or os.path.join(work, f"keys-{self.port}")
        self.args = [binary, "serve", "--bind", f"127.0.0.1:{self.port}", "--database", database,
                     "--keys-dir", self.keys, "--alg", alg,
                     "--throttle-per-address", "100000",
                     "--throttle-per-user-address", "10000",
                     "--throttle-per-user", "1000000", *extra]
        self.log = open(os.path.join(work, f"server-{self.port}.log"), "ab")
        self.statm = None  # (pid, descriptor of its statm)
        self.start()
        with open(os.path.join(self.keys, "initial-admin-password")) as f:
            self.password = f.read().strip()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except Exception:
                if self.proc.poll() is not None:
                    sys.exit(f"jwt-issuer exited at start-up; see {self.log.name}")
                time.sleep(0.1)
        sys.exit("jwt-issuer did not start within 60 s")

    def rss_mib(self):
        """The process's resident memory now, in MiB (`statm`, kept open while it runs: the
        peak is read 40 times a second)."""
        try:
            if self.statm is None or self.statm[0] != self.proc.pid:
                if self.statm is not None:
                    os.close(self.statm[1])
                self.statm = (self.proc.pid, os.open(f"/proc/{self.proc.pid}/statm", os.O_RDONLY))
            return int(os.pread(self.statm[1], 256, 0).split()[1]) * PAGE / 2**20
        except (FileNotFoundError, ProcessLookupError):
            return 0.0

    def login(self):
        return post_form(self.base + "/oauth/token", {
            "grant_type": "password", "username": "admin", "password": self.password})

    def refresh_tokens(self, n):
        tokens, lock = [], threading.Lock()

        def worker(count):
            for _ in range(count):
                token = self.login()["refresh_token"]
                with lock:
                    tokens.append(token)
        workers = [threading.Thread(target=worker, args=(n // 8,)) for _ in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return tokens

    def warm(self, work):
        """Brings the server to its idle state as a service that has served traffic: short
        bursts of logins at 64 connections, refreshes and JWKS reads at 32 (which open every
        pooled database connection, fill the database caches and the workers' buffers), then a
        pause longer than the hashing threads' idle release (2 s). RSS right after start-up is
        lower by those one-time allocations; `fresh` keeps it for the record."""
        self.fresh = self.rss_mib()
        wrk(self.base + "/oauth/token", "login.lua", {
            "LOAD_USERNAME": "admin", "LOAD_PASSWORD": self.password},
            seconds=3, warmup=0, conns=64)
        tokens = os.path.join(work, f"warm-tokens-{self.port}")
        with open(tokens, "w") as f:
            f.write("\n".join(self.refresh_tokens(64)) + "\n")
        wrk(self.base + "/oauth/token", "refresh.lua", {"LOAD_TOKENS": tokens}, seconds=2, warmup=0)
        wrk(self.base + "/.well-known/jwks.json", "get.lua", seconds=1, warmup=0)
        time.sleep(3)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.statm is not None:
            os.close(self.statm[1])
            self.statm = None


class Sampler:
    """Calls `sample()` every `INTERVAL` seconds, from the start, while a block runs. Every
    sampler active at once is called from one thread: each wakeup of the harness takes a CPU
    from the service it measures (a thread waking 40-50 times a second took 0.8% of a core)."""

    INTERVAL = 0.025
    lock = threading.Lock()
    active = []
    ticker = None  # (thread, stop event) while a sampler is active

    def __enter__(self):
        with Sampler.lock:
            self.sample()
            Sampler.active.append(self)
            if Sampler.ticker is None:
                stop = threading.Event()
                thread = threading.Thread(target=Sampler.tick, args=(stop,), daemon=True)
                Sampler.ticker = (thread, stop)
                thread.start()
        return self

    @staticmethod
    def tick(stop):
        while not stop.wait(Sampler.INTERVAL):
            with Sampler.lock:
                for sampler in Sampler.active:
                    sampler.sample()

    def __exit__(self, *exc):
        # Under the lock: no sample of this one runs once it has been removed.
        with Sampler.lock:
            Sampler.active.remove(self)
            ticker = None if Sampler.active else Sampler.ticker
            if ticker:
                Sampler.ticker = None
        if ticker:
            ticker[1].set()
            ticker[0].join()


class Peak(Sampler):
    """Samples a process's RSS every 25 ms while a block runs."""

    def __init__(self, rss):
        self.rss, self.peak = rss, 0.0

    def sample(self):
        self.peak = max(self.peak, self.rss())


class Machine(Sampler):
    """What the rest of the machine did while a row ran, to tell a slow row from a slow VM:
    CPU time stolen by the hypervisor and taken by processes that are not part of the run
    (/proc/stat and /proc/PID/stat, read at both ends), and the disks' write and flush
    latency (/proc/diskstats: the mean latency of the requests completed in each 100 ms, the
    worst interval kept), which a durable commit waits for. A mean hides one stalled request
    among many quick ones, so the longest stall is kept too: the longest time the disks held
    requests without completing any (read every 25 ms). Beside them, where the run's own CPU went
    (jwt-issuer, its password-hashing threads among it, PostgreSQL, wrk, the harness and the
    peers) and how much of the machine stayed idle: a row short of its limit with the machine
    idle waited for something other than the CPU."""

    # Processes that are part of a run: the servers measured, their databases, the load.
    OURS = {"jwt-issuer", "wrk", "postgres", "python3", "python", "gunicorn", "node"}
    WINDOW = 4  # samples per latency interval (100 ms)

    @staticmethod
    def named_ticks(stat):
        """A process's or thread's name and CPU ticks (user + system) from its `stat` file, or
        None once it has gone."""
        try:
            with open(stat) as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            return None
        fields = tail.split()
        return head.split("(", 1)[1], int(fields[11]) + int(fields[12])

    @classmethod
    def cpu_by_process(cls):
        out = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit() and (named := cls.named_ticks(f"/proc/{pid}/stat")):
                out[int(pid)] = named
        return out

    @classmethod
    def hashing(cls, processes):
        """The CPU ticks of jwt-issuer's password-hashing threads (named argon2-N), summed."""
        ticks = 0
        for pid, (name, _) in processes.items():
            if name != "jwt-issuer":
                continue
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                named = cls.named_ticks(f"/proc/{pid}/task/{tid}/stat")
                if named and named[0].startswith("argon2-"):
                    ticks += named[1]
        return ticks

    @staticmethod
    def cpu_totals():
        """Every CPU's ticks, the stolen ones, the idle ones (waiting for I/O included)."""
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return (sum(values), values[7] if len(values) > 7 else 0,
                values[3] + (values[4] if len(values) > 4 else 0))

    @staticmethod
    @functools.cache
    def whole_disk(name):
        """Whether a block device (its name as bytes) is a whole disk (not a partition, loop or
        RAM device)."""
        return not (name.startswith((b"loop", b"ram", b"dm-", b"sr"))
                    or os.path.exists(b"/sys/class/block/" + name + b"/partition"))

    diskstats = None  # /proc/diskstats, kept open: each sample reads it again from the start

    @classmethod
    def disks(cls):
        """Summed over whole disks: completed writes, ms spent on them, completed flushes, ms
        spent on them, requests of every kind completed, requests in flight."""
        totals = [0, 0, 0, 0, 0, 0]
        try:
            if cls.diskstats is None:
                cls.diskstats = os.open("/proc/diskstats", os.O_RDONLY)
            text = os.pread(cls.diskstats, 1 << 16, 0)
        except OSError:
            return totals
        for line in text.splitlines():
            fields = line.split()
            if not cls.whole_disk(fields[2]):
                continue
            values = fields[3:]
            totals[0] += int(values[4])
            totals[1] += int(values[7])
            totals[4] += int(values[0]) + int(values[4])
            totals[5] += int(values[8])
            if len(values) >= 15:  # discards: Linux 4.18 and later
                totals[4] += int(values[11])
            if len(values) >= 17:  # flushes: Linux 5.5 and later
                totals[2] += int(values[15])
                totals[3] += int(values[16])
                totals[4] += int(values[15])
        return totals

    measuring = []  # every Machine between its two readings of /proc

    @classmethod
    def reaped(cls, name, ticks):
        """Counts the CPU of a process of the run that has ended (and been reaped) for every
        row measured meanwhile: it is gone from /proc by their last reading."""
        with Sampler.lock:
            for machine in cls.measuring:
                machine.ended[name] = machine.ended.get(name, 0) + ticks

    def __enter__(self):
        self.processes, self.totals = self.cpu_by_process(), self.cpu_totals()
        self.hashed = self.hashing(self.processes)
        self.ended = {}  # CPU ticks of processes that ran and ended within the row, by name
        with Sampler.lock:
            Machine.measuring.append(self)
        self.started = time.time()
        self.first = self.last = self.previous = self.disks()
        self.worst = {"write_ms": 0.0, "flush_ms": 0.0}
        self.samples, self.at = 0, time.monotonic()
        self.stalled = self.longest_stall = 0.0
        return super().__enter__()

    def sample(self):
        now, at = self.disks(), time.monotonic()
        # Requests in flight at both readings and none completed in between: stalled.
        if now[5] and self.previous[5] and now[4] == self.previous[4]:
            self.stalled += at - self.at
            self.longest_stall = max(self.longest_stall, self.stalled)
        else:
            self.stalled = 0.0
        self.previous, self.at = now, at
        self.samples += 1
        if self.samples % self.WINDOW:
            return
        for name, count, spent in (("write_ms", 0, 1), ("flush_ms", 2, 3)):
            done = now[count] - self.last[count]
            if done:
                self.worst[name] = max(self.worst[name], (now[spent] - self.last[spent]) / done)
        self.last = now

    def __exit__(self, *exc):
        super().__exit__(*exc)
        with Sampler.lock:
            Machine.measuring.remove(self)
        processes, totals, disks = self.cpu_by_process(), self.cpu_totals(), self.disks()
        hashed = self.hashing(processes)
        ticks = max(1, totals[0] - self.totals[0])  # every CPU's ticks, in USER_HZ
        others, ours = {}, dict(self.ended)
        for pid, (name, cpu) in processes.items():
            used = cpu - self.processes[pid][1] if pid in self.processes else cpu
            if used > 0:
                group = ours if name in self.OURS else others
                group[name] = group.get(name, 0) + used
        seconds = max(1e-3, time.time() - self.started)
        writes, flushes = disks[0] - self.first[0], disks[2] - self.first[2]
        self.summary = {
            "steal": (totals[1] - self.totals[1]) / ticks,
            # Shares of the whole machine (every core), like steal.
            "others": {name: used / ticks for name, used in
                       sorted(others.items(), key=lambda kv: -kv[1])[:3]},
            "others_total": sum(others.values()) / ticks,
            "ours": {name: used / ticks for name, used in sorted(ours.items(), key=lambda kv: -kv[1])},
            "hashing": max(0, hashed - self.hashed) / ticks,
            "idle": (totals[2] - self.totals[2]) / ticks,
            "disk_writes_per_s": writes / seconds,
            "disk_write_ms": (disks[1] - self.first[1]) / writes if writes else 0.0,
            "disk_write_worst_ms": self.worst["write_ms"],
            "disk_flushes_per_s": flushes / seconds,
            "disk_flush_ms": (disks[3] - self.first[3]) / flushes if flushes else 0.0,
            "disk_flush_worst_ms": self.worst["flush_ms"],
            "disk_longest_stall_ms": self.longest_stall * 1000,
            # For per-request figures: the shares' span, in core-seconds.
            "core_seconds": ticks / os.sysconf("SC_CLK_TCK"),
        }


def wrk(url, script, env=None, seconds=SECONDS, warmup=WARMUP, conns=CONNS, background=False,
        warmup_env=None, threads=THREADS, machine=True):
    """Runs wrk (after a warm-up run, with `warmup_env` over `env` if given) and returns its
    figures with the rate, and with what the machine did meanwhile unless `machine` is false
    (a load beside another that is measured)."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", "--timeout", "10s", "-s", os.path.join(LUA, script)]
    # Only this call's settings: a LOAD_RATE left in the caller's environment would pace a flood.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LOAD_")}
    full_env = dict(inherited, LOAD_THREADS=str(threads), **(env or {}))
    if warmup:
        subprocess.run(cmd + [f"-d{warmup}s", url], env=dict(full_env, **(warmup_env or {})),
                       check=True, capture_output=True)
        # What the warm-up left in flight when it stopped is finished before the measured run,
        # not inside its window: a login warm-up leaves up to one hash per connection queued
        # (32 hashes, a quarter of a second of both cores here), which the measured run's
        # first moments would otherwise spend on requests nobody waits for. The same pause
        # for every server, peers included.
        time.sleep(SETTLE)

    def run():
        proc = subprocess.Popen(cmd + [f"-d{seconds}s", url], env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout.read()
        proc.stdout.close()
        # Reaped here, so its CPU is known although it has ended before the rows' last
        # reading of /proc.
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"wrk failed:\n{out}")
        Machine.reaped("wrk", (usage.ru_utime + usage.ru_stime) * os.sysconf("SC_CLK_TCK"))
        match = re.search(r"^RESULT (.*)$", out, re.M)
        if not match:
            sys.exit(f"wrk printed no result:\n{out}")
        result = json.loads(match.group(1))
        result["rate"] = result["requests"] / result["seconds"]
        return result

    def measured():
        if not machine:
            return run()
        with Machine() as measuring:
            result = run()
        result["machine"] = measuring.summary
        return result
    return Running(measured) if background else measured()


class Running:
    """A measurement running on a thread of its own. `result()` waits for its figures, or ends
    the run with its failure (a failed wrk), which the thread cannot do by itself."""

    def __init__(self, measure):
        self.outcome = {}

        def target():
            try:
                self.outcome["result"] = measure()
            except SystemExit as failed:
                self.outcome["failed"] = failed
        self.thread = threading.Thread(target=target)
        self.thread.start()

    def result(self):
        self.thread.join()
        if "failed" in self.outcome:
            raise self.outcome["failed"]
        return self.outcome["result"]


def settle(server, idle, limit=15):
    """Waits up to `limit` s for RSS to come back within 10% of idle; returns the last reading."""
    deadline = time.time() + limit
    while True:
        rss = server.rss_mib()
        if rss <= idle * 1.10 or time.time() > deadline:
            return rss
        time.sleep(0.5)


def machine_limits(cores):
    limits = {}
    if shutil.which("openssl"):
        out = subprocess.run(["openssl", "speed", "-seconds", "3", "rsa2048", "ecdsap256"],
                             capture_output=True, text=True).stdout
        rsa = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", out, re.M)
        ec = re.search(r"^\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", out, re.M)
        if rsa:
            limits["rsa2048_signs_per_core"] = float(rsa.group(1))
        if ec:
            limits["p256_signs_per_core"] = float(ec.group(1))
    limits["hash_threads"], limits["argon2_hashes_per_s"] = hash_limit()
    limits["cores"] = cores
    return limits


def hash_limit():
    """The argon2id limit now: the service's own hasher, one thread per core, no HTTP
    (`cargo bench --bench hashing`, 5 s). Returns (threads, hashes per second)."""
    out = subprocess.run(["cargo", "bench", "-q", "--bench", "hashing"], cwd=ROOT,
                         capture_output=True, text=True)
    match = re.search(r"(\d+) hashing threads: ([\d.]+) hashes/s", out.stdout)
    if not match:
        sys.exit(f"cargo bench --bench hashing failed:\n{out.stdout}{out.stderr}")
    return int(match.group(1)), float(match.group(2))


def bracketed(measure):
    """A login row between two measurements of the argon2 limit, taken just before and just
    after it (the server idle): on a shared VM the limit drifts by 10-30% within minutes, so a
    limit measured at the start of the run says little about a row measured later. Adds the
    two limits and the row's share of their mean."""
    before = hash_limit()[1]
    row = measure()
    after = hash_limit()[1]
    flood = row["login"] if "login" in row else row
    flood["limit_before"], flood["limit_after"] = before, after
    flood["share_of_limit"] = flood["rate"] / ((before + after) / 2)
    return row


def run_backend(args, backend, database_for, work, limits):
    """Every row against one backend; returns its results."""
    rows = {}
    bound = 64 + limits["hash_threads"] * ARGON2_MIB
    peaks = []
    for alg in ("RS256", "ES256"):
        server = Server(args.binary, database_for(alg), alg, work)
        try:
            server.warm(work)
            idle = server.rss_mib()
            # A token is used once: the warm-up and the measured run each get their own.
            token_files = []
            for run in ("warm-up", "measured"):
                token_files.append(os.path.join(work, f"tokens-{backend}-{alg}-{run}"))
                with open(token_files[-1], "w") as f:
                    f.write("\n".join(server.refresh_tokens(128)) + "\n")
            url = server.base + "/oauth/token"
            with Peak(server.rss_mib) as peak:
                rows[f"refresh {alg}"] = wrk(url, "refresh.lua", {"LOAD_TOKENS": token_files[1]},
                                             warmup_env={"LOAD_TOKENS": token_files[0]})
                if alg == "RS256":
                    rows["login"] = bracketed(lambda: login_row(server))
                    rows["jwks"] = wrk(server.base + "/.well-known/jwks.json", "get.lua")
                    rows["mixed"] = bracketed(lambda: mixed(server))
            after = settle(server, idle)
            peaks.append(peak.peak)
            rows[f"rss {alg}"] = {"fresh": server.fresh, "idle": idle, "peak": peak.peak,
                                  "after": after}
            print(f"  {backend} {alg}: done", file=sys.stderr)
        finally:
            server.stop()
    rows["memory_ok"] = all(
        r["peak"] <= bound and r["after"] <= r["idle"] * 1.10 and r["idle"] - r["fresh"] < ARGON2_MIB
        for k, r in rows.items() if k.startswith("rss "))
    rows["bound_mib"] = bound
    return rows


def login_row(server):
    """Password logins as fast as 32 connections get them."""
    return wrk(server.base + "/oauth/token", "login.lua", {
        "LOAD_USERNAME": "admin", "LOAD_PASSWORD": server.password})


def cpu_per_login(flood):
    """A login flood's CPU per login, in ms: the hashing threads, the service's other threads,
    PostgreSQL, and everything else that ran (wrk, the harness, other processes, stolen time),
    with what the work besides hashing may take at most for the hashing threads to get 90% of
    the machine: a ninth of the hashing."""
    m = flood["machine"]
    per_login = m["core_seconds"] * 1000 / max(1, flood["requests"])
    service = m["ours"].get("jwt-issuer", 0) - m["hashing"]
    postgres = m["ours"].get("postgres", 0)
    rest = 1 - m["idle"] - m["hashing"] - service - postgres
    return {"hashing": m["hashing"] * per_login, "service": service * per_login,
            "postgres": postgres * per_login, "rest": rest * per_login,
            "budget_for_90": m["hashing"] * per_login / 9}


def cpu_line(flood):
    c = cpu_per_login(flood)
    besides = c["service"] + c["postgres"] + c["rest"]
    postgres = f", PostgreSQL {c['postgres']:.2f} ms" if c["postgres"] else ""
    return (f"CPU per login: hashing {c['hashing']:.2f} ms, jwt-issuer's other threads "
            f"{c['service']:.2f} ms{postgres}, the rest {c['rest']:.2f} ms; besides hashing "
            f"{besides:.2f} ms, at most {c['budget_for_90']:.2f} ms for 90% of the machine to go "
            f"to hashing")


def login_check(args, work, backend, database):
    """The login rows alone on one backend, each between two measurements of the limit (quick
    to repeat)."""
    server = Server(args.binary, database, "RS256", work)
    try:
        server.warm(work)
        for name, measure in (("login", login_row), ("mixed: login flood", mixed)):
            row = bracketed(lambda: measure(server))
            flood = row.get("login", row)
            line = (f"{backend} {name}: {flood['rate']:.1f}/s, p99 {flood['p99_ms']:.0f} ms, "
                    f"{flood['share_of_limit']:.0%} of the argon2 limit "
                    f"({flood['limit_before']:.1f} before, {flood['limit_after']:.1f} after)")
            if "jwks" in row:
                line += (f"; steady JWKS p99 {row['jwks']['p99_ms']:.1f} ms, "
                         f"steady refresh p99 {row['refresh']['p99_ms']:.1f} ms")
            else:
                line += "\n  " + cpu_line(flood)
            print(line)
    finally:
        server.stop()


def mixed(server):
    """A login flood (wrk, 32 connections) with a steady JWKS and refresh load beside it, each
    from a wrk of its own on a fixed schedule (LOAD_RATE in report.lua). The same load from
    Python threads took 4.8% of the machine (2 cores) from the flood it ran beside, the two wrks
    1.6%."""
    tokens = os.path.join(os.path.dirname(server.log.name), f"tokens-steady-{server.port}")
    with open(tokens, "w") as f:
        f.write("\n".join(server.refresh_tokens(8)) + "\n")
    flood = wrk(server.base + "/oauth/token", "login.lua", {
        "LOAD_USERNAME": "admin", "LOAD_PASSWORD": server.password}, warmup=0, background=True)
    time.sleep(1)
    steadies = {
        "jwks": wrk(server.base + "/.well-known/jwks.json", "get.lua", {"LOAD_RATE": "200"},
                    seconds=SECONDS - 2, warmup=0, conns=4, threads=1, machine=False,
                    background=True),
        "refresh": wrk(server.base + "/oauth/token", "refresh.lua",
                       {"LOAD_RATE": "100", "LOAD_TOKENS": tokens}, seconds=SECONDS - 2, warmup=0,
                       conns=2, threads=1, machine=False, background=True),
    }
    result = {name: steady.result() for name, steady in steadies.items()}
    result["login"] = flood.result()
    for name in steadies:
        out = result[name]
        result[name] = {"rate": out["rate"], "requests": out["requests"],
                        "failures": out["non2xx"] + out["socket_errors"],
                        "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"]}
    return result


def memory_check(args, work):
    """The memory bound alone (CI): a login burst, then RSS back to within 10% of idle."""
    cores = os.cpu_count() or 1
    bound = 64 + cores * ARGON2_MIB
    server = Server(args.binary, f"sqlite://{work}/memory.db", "RS256", work)
    try:
        server.warm(work)
        idle = server.rss_mib()
        with Peak(server.rss_mib) as peak:
            login = wrk(server.base + "/oauth/token", "login.lua", {
                "LOAD_USERNAME": "admin", "LOAD_PASSWORD": server.password},
                seconds=8, warmup=0, conns=64)
        after = settle(server, idle)
    finally:
        server.stop()
    print(f"login burst: {login['rate']:.1f}/s at 64 connections, p99 {login['p99_ms']:.0f} ms; "
          f"RSS at start-up {server.fresh:.1f} MiB, idle {idle:.1f} MiB, peak {peak.peak:.1f} MiB (bound {bound} MiB), "
          f"after {after:.1f} MiB (within 10% of idle: <= {idle * 1.1:.1f})")
    failed = []
    if peak.peak > bound:
        failed.append(f"peak RSS {peak.peak:.1f} MiB above the bound {bound} MiB")
    if after > idle * 1.10:
        failed.append(f"RSS {after:.1f} MiB did not come back within 10% of idle {idle:.1f} MiB")
    if idle - server.fresh >= ARGON2_MIB:
        failed.append(f"at rest the server holds {idle - server.fresh:.1f} MiB more than at start-up: "
                      "a hashing thread kept its argon2 memory")
    if login["requests"] == 0 or login["non2xx"] or login["socket_errors"]:
        failed.append(f"failed logins: {login}")
    if failed:
        sys.exit("memory check failed: " + "; ".join(failed))


def table(results):
    lim = results["limits"]
    lines = [f"Machine: {lim['cores']} cores; RSA-2048 sign {lim.get('rsa2048_signs_per_core', 0):,.0f}/s "
             f"per core, P-256 sign {lim.get('p256_signs_per_core', 0):,.0f}/s per core (openssl speed); "
             f"argon2id limit {lim['argon2_hashes_per_s']:.1f} hashes/s (own hasher, "
             f"{lim['hash_threads']} threads, no HTTP).", "",
             "| row | backend | rate/s | p50 ms | p99 ms | errors |", "|---|---|---:|---:|---:|---:|"]
    signs = {"refresh RS256": lim.get("rsa2048_signs_per_core"),
             "refresh ES256": lim.get("p256_signs_per_core")}

    def rate_cell(r, name=None):
        share = ""
        if "share_of_limit" in r:
            share = (f" ({r['share_of_limit']:.0%} of the limit measured around it: "
                     f"{r['limit_before']:.1f} before, {r['limit_after']:.1f} after)")
        elif signs.get(name):
            # Each refresh signs one access token: its rate beside what the cores could sign
            # with nothing else to do, which moves with the VM as much as the rate does.
            share = f" ({r['rate'] / (signs[name] * lim['cores']):.0%} of the signing limit)"
        return f"{r['rate']:,.1f}{share}"
    for backend, rows in results["backends"].items():
        for name in ("login", "refresh RS256", "refresh ES256", "jwks"):
            r = rows[name]
            lines.append(f"| {name} | {backend} | {rate_cell(r, name)} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['non2xx'] + r['socket_errors']} |")
        m = rows["mixed"]
        lines.append(f"| mixed: login flood | {backend} | {rate_cell(m['login'])} | "
                     f"{m['login']['p50_ms']:.1f} | {m['login']['p99_ms']:.1f} | "
                     f"{m['login']['non2xx'] + m['login']['socket_errors']} |")
        for name, rate in (("jwks", 200), ("refresh", 100)):
            r = m[name]
            lines.append(f"| mixed: steady {name} ({rate}/s) | {backend} | {r['rate']:,.1f} | "
                         f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['failures']} |")
    for name, rows in results.get("peers", {}).items():
        for row, r in rows.items():
            lines.append(f"| {row} | {name} | {r['rate']:,.1f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['non2xx'] + r['socket_errors']} |")
    lines += ["", "Where the CPU went and what the rest of the machine did meanwhile (shares of all cores; "
              "disk latencies: the mean over the row, and the worst 100 ms interval's; the longest time "
              "the disks held requests without completing any):", "",
              "| row | backend | the run's processes | idle | stolen | other processes | disk writes | "
              "disk flushes | longest disk stall |",
              "|---|---|---|---:|---:|---|---|---|---:|"]
    for backend, rows in list(results["backends"].items()) + list(results.get("peers", {}).items()):
        for name, r in rows.items():
            r = r.get("login", r) if isinstance(r, dict) else None
            if r and "machine" in r:
                lines.append(f"| {name} | {backend} | {machine_cells(r['machine'])} |")
    lines.append("")
    for backend, rows in results["backends"].items():
        lines.append(f"Login flood, {backend}: {cpu_line(rows['login'])}.")
    lines += ["", "| RSS MiB | start-up | idle | peak | after | bound |", "|---|---:|---:|---:|---:|---:|"]
    for backend, rows in results["backends"].items():
        for alg in ("RS256", "ES256"):
            r = rows[f"rss {alg}"]
            lines.append(f"| {backend}, {alg} server | {r['fresh']:.1f} | {r['idle']:.1f} | {r['peak']:.1f} | "
                         f"{r['after']:.1f} | {rows['bound_mib']} |")
    for name, r in results.get("peer_rss", {}).items():
        lines.append(f"| {name} | | {r['idle']:.1f} | {r['peak']:.1f} | {r['after']:.1f} | |")
    return "\n".join(lines)


def ms(value):
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def machine_cells(m):
    others = ", ".join(f"{name} {share:.1%}" for name, share in m["others"].items()) or "none"
    disk = []
    for kind, rate in (("write", m["disk_writes_per_s"]), ("flush", m["disk_flushes_per_s"])):
        disk.append(f"{rate:,.0f}/s, {ms(m[f'disk_{kind}_ms'])} / {ms(m[f'disk_{kind}_worst_ms'])} ms"
                    if rate else "none")
    ours = []
    for name, share in m["ours"].items():
        hashing = f" (hashing {m['hashing']:.1%})" if name == "jwt-issuer" and m["hashing"] else ""
        ours.append(f"{name} {share:.1%}{hashing}")
    return (f"{', '.join(ours) or 'none'} | {m['idle']:.1%} | {m['steal']:.1%} | "
            f"{m['others_total']:.1%} ({others}) | {disk[0]} | {disk[1]} | "
            f"{m['disk_longest_stall_ms']:,.0f} ms")


class PostgresDatabases:
    """Fresh databases on a PostgreSQL server, dropped at the end: `pg(label)` creates one and
    returns its URL."""

    def __init__(self, server):
        self.server, self.created = server, []

    def __enter__(self):
        return self

    def __call__(self, label):
        name = f"jwt_issuer_load_{os.getpid()}_{label.lower()}"
        for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
            out = subprocess.run(["psql", self.server + "/postgres", "-qc", sql],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"--postgres {self.server}: `{sql}` failed: {out.stderr.strip()}")
        self.created.append(name)
        return f"{self.server}/{name}"

    def __exit__(self, *exc):
        for name in self.created:
            subprocess.run(["psql", self.server + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=["all", "memory", "login", "peers"])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "jwt-issuer"))
    parser.add_argument("--postgres", help="a PostgreSQL server URL where databases may be created")
    parser.add_argument("--peers", action="store_true", help="also measure simplejwt and oidc-provider")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian: apt-get install wrk)")
    if not os.path.exists(args.binary):
        sys.exit(f"no binary at {args.binary}: run `cargo build --release` first")
    work = tempfile.mkdtemp(prefix="jwt-issuer-load-")
    try:
        if args.what == "memory":
            memory_check(args, work)
            return
        if args.what == "login":
            login_check(args, work, "sqlite", f"sqlite://{work}/login.db")
            if args.postgres:
                with PostgresDatabases(args.postgres) as pg:
                    login_check(args, work, "postgresql", pg("login"))
            return
        if args.what == "peers":
            sys.path.insert(0, HERE)
            import load_peers
            peers, rss = load_peers.measure(work, wrk, Peak)
            print(json.dumps({"peers": peers, "peer_rss": rss}, indent=2))
            return
        results = {"limits": machine_limits(os.cpu_count() or 1), "backends": {}}
        results["backends"]["sqlite"] = run_backend(
            args, "sqlite", lambda alg: f"sqlite://{work}/{alg}.db", work, results["limits"])
        if args.postgres:
            with PostgresDatabases(args.postgres) as pg:
                results["backends"]["postgresql"] = run_backend(args, "postgresql", pg, work, results["limits"])
        if args.peers:
            sys.path.insert(0, HERE)
            import load_peers
            results["peers"], results["peer_rss"] = load_peers.measure(work, wrk, Peak)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        print(table(results))
        if not all(rows["memory_ok"] for rows in results["backends"].values()):
            sys.exit("the memory bound was broken (see the RSS table)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
