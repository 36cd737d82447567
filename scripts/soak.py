#!/usr/bin/env python3
"""Load with faults (issue 16): drives logins, refreshes, JWKS reads and revocations at fixed
rates for a few minutes while things fail, then checks that the service kept its promises.

    cargo build --release
    python3 scripts/soak.py                                            # SQLite, one instance
    python3 scripts/soak.py --postgres postgres://postgres@127.0.0.1:5432   # two instances

Faults, on a timeline scaled to --seconds (default 180):
  * 500 idle slow connections (headers, then a body, trickled a byte every 2 s) held open
    from 1/6 to 2/6 of the run, reopened as the server closes them;
  * SIGKILL of one instance (the second of two on PostgreSQL, the only one on SQLite) at 5/12,
    started again 10 s later;
  * on PostgreSQL, the database server stopped at 2/3 and started again 6 s later
    (`--pg-restart-cmd`, default `pg_ctlcluster`; needs the rights to run it).
Traffic goes to the instances in turn; a refused connection fails over to the other
instance, as a load balancer would. Everything runs on loopback and ends after --seconds.

Checks, each failing the run (exit 1): every refresh token issued was rotated exactly once
or is still valid (introspected at the end: each rotated token inactive, each chain's last
token active, unless its answer was lost with a killed connection or the chain was revoked);
no revoked token introspects active, neither right after its revocation on the other
instance nor at the end; no response was a 5xx except a 503 while PostgreSQL was down (and
15 s after); the instances' RSS came back within 10% of its baseline. The summary gives the
requests and errors by kind, and p99 before / during / after each fault.
"""
import argparse
import collections
import http.client
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import ROOT, Server  # noqa: E402


def percentile(values, p):
    """The `p`th percentile of `values` (nearest rank), NaN for none."""
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


ISSUER = "http://soak.invalid"
PASSWORD = "soak-correct-horse-battery-7"
USERS = [f"soak{i}" for i in range(8)]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GRACE = 15  # seconds after PostgreSQL is back during which a 503 is still expected


class Transport(Exception):
    """The request got no answer: `kind` is refused (never reached a server) or lost."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class Soak:
    def __init__(self, args, servers, t0):
        self.args, self.servers, self.t0 = args, servers, t0
        self.lock = threading.Lock()
        self.records = []  # (t, kind, outcome, latency_ms)
        self.chains = collections.deque()  # idle chains, each a list of refresh tokens
        self.busy_chains = []  # every chain ever made
        self.in_doubt = []  # (chain, token): a refresh whose answer was lost
        self.revoked = []  # tokens revoked (200), to introspect at the end
        self.violations = []
        self.access = collections.deque(maxlen=64)  # recent access tokens, to revoke some
        self.stop = threading.Event()
        self.outage = []  # [start, end) of PostgreSQL outages, in run time
        self.admin = None

    def now(self):
        return time.monotonic() - self.t0

    def record(self, kind, outcome, latency):
        with self.lock:
            self.records.append((self.now(), kind, outcome, latency))

    def violation(self, what):
        with self.lock:
            self.violations.append(f"t={self.now():.1f}s {what}")

    # -- requests ---------------------------------------------------------------------------

    def send(self, state, index, kind, method, path, body=None, headers=None):
        """One request to instance `index` (failing over when refused); records it and returns
        (status, parsed JSON body or None, index of the instance that answered)."""
        order = [index % len(self.servers)] + [
            i for i in range(len(self.servers)) if i != index % len(self.servers)]
        for attempt, i in enumerate(order):
            server = self.servers[i]
            conns = state.setdefault("conns", {})
            conn = conns.get(server.port)
            if conn is None:
                conn = conns[server.port] = http.client.HTTPConnection(
                    "127.0.0.1", server.port, timeout=10)
            t = time.perf_counter()
            try:
                conn.request(method, path, body, headers or {})
                response = conn.getresponse()
                raw = response.read()
            except ConnectionRefusedError:
                conn.close()
                conns.pop(server.port, None)
                self.record(kind, "refused", (time.perf_counter() - t) * 1000)
                if attempt + 1 < len(order):
                    continue
                raise Transport("refused")
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(server.port, None)
                self.record(kind, "lost", (time.perf_counter() - t) * 1000)
                raise Transport("lost")
            latency = (time.perf_counter() - t) * 1000
            status = response.status
            self.record(kind, str(status), latency)
            self.check_status(kind, status)
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return status, parsed, i
        raise Transport("refused")

    def check_status(self, kind, status):
        if status < 500:
            return
        t = self.now()
        if status == 503 and any(a <= t < b + GRACE for a, b in self.outage_windows()):
            return
        self.violation(f"{kind} answered {status}")

    def outage_windows(self):
        with self.lock:
            return [(a, b if b is not None else float("inf")) for a, b in self.outage]

    def form(self, state, index, kind, path, fields, auth=None):
        headers = dict(FORM)
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        return self.send(state, index, kind, "POST", path, urllib.parse.urlencode(fields), headers)

    def introspect(self, state, index, token):
        status, body, _ = self.form(state, index, "introspect", "/oauth/introspect",
                                    {"token": token}, auth=self.admin)
        if status != 200:
            raise Transport(f"introspection answered {status}")
        return body["active"]

    # -- the load ---------------------------------------------------------------------------

    def login(self, state, n):
        user = USERS[n % len(USERS)]
        status, body, _ = self.form(state, n, "login", "/oauth/token", {
            "grant_type": "password", "username": user, "password": PASSWORD})
        if status == 200:
            chain = [body["refresh_token"]]
            with self.lock:
                self.busy_chains.append(chain)
                self.chains.append(chain)
                self.access.append(body["access_token"])

    def refresh(self, state, n):
        with self.lock:
            if not self.chains:
                return
            chain = self.chains.popleft()
        token = chain[-1]
        try:
            status, body, _ = self.form(state, n, "refresh", "/oauth/token", {
                "grant_type": "refresh_token", "refresh_token": token})
        except Transport as e:
            if e.kind == "refused":  # never reached a server: the token is as it was
                with self.lock:
                    self.chains.append(chain)
            else:
                with self.lock:
                    self.in_doubt.append((chain, token))
            return
        if status == 200:
            chain.append(body["refresh_token"])
            with self.lock:
                self.chains.append(chain)
        elif status == 503:
            with self.lock:
                self.chains.append(chain)
        else:
            self.violation(f"refresh of a live token answered {status} {body}")

    def jwks(self, state, n):
        self.send(state, n, "jwks", "GET", "/.well-known/jwks.json")

    def revoke(self, state, n):
        """Ends a session (its refresh token) or an access token, then asks the other instance
        whether it is still active."""
        if n % 2 == 0:
            with self.lock:
                if not self.chains:
                    return
                chain = self.chains.popleft()
            token, hint = chain[-1], "refresh_token"
        else:
            with self.lock:
                if not self.access:
                    return
                token, hint, chain = self.access.popleft(), "access_token", None
        try:
            status, _, answered = self.form(state, n, "revoke", "/oauth/revoke",
                                            {"token": token, "token_type_hint": hint})
        except Transport:
            status = None
        if status != 200:  # not revoked (yet): give it back
            with self.lock:
                if chain is not None:
                    self.chains.append(chain)
            return
        with self.lock:
            self.revoked.append(token)
            if chain is not None:
                chain.append(None)  # ended on purpose
        try:
            if self.introspect(state, answered + 1, token):
                self.violation(f"a revoked {hint} introspects active on the other instance")
        except Transport:
            pass  # checked again at the end

    def drive(self, kind, rate, do):
        """Calls `do` at `rate` per second on its own schedule, until the run ends."""
        threads = max(1, int(rate // 10))
        interval = threads / rate

        def worker(offset):
            state, n = {}, offset
            start = time.monotonic() + offset * interval / threads
            while not self.stop.is_set():
                due = start + (n - offset) / threads * interval
                delay = due - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                    continue
                try:
                    do(state, n)
                except Transport:
                    pass
                except Exception as e:  # a bug in the script or an answer it cannot read
                    self.violation(f"{kind}: {e!r}")
                n += threads
        return [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]


class SlowClients:
    """`count` connections that send a request a byte every 2 s, reopened when closed."""

    def __init__(self, servers, count):
        self.servers, self.count = servers, count
        self.stop, self.opened, self.closed_by_server = threading.Event(), 0, 0

    def run(self):
        sel = selectors.DefaultSelector()
        socks = {}
        payloads = [b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: soak\r\nX-Slow: "
                    + b"a" * 4000,
                    b"POST /oauth/token HTTP/1.1\r\nHost: soak\r\nContent-Type: "
                    b"application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n"
                    + b"grant_type=password&username=" + b"a" * 4000]

        def open_one(i):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.servers[i % len(self.servers)].port))
            sel.register(s, selectors.EVENT_READ, i)
            socks[s] = [payloads[i % 2], 0]
            self.opened += 1

        for i in range(self.count):
            open_one(i)
        next_tick = time.monotonic()
        while not self.stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    s.recv(4096)
                except OSError:
                    pass
                # Readable: the server answered (408) or closed it; either way it is gone.
                sel.unregister(s)
                s.close()
                socks.pop(s, None)
                self.closed_by_server += 1
                open_one(key.data)
            if time.monotonic() >= next_tick:
                next_tick += 2
                for s, st in list(socks.items()):
                    payload, sent = st
                    if sent < len(payload):
                        try:
                            s.send(payload[sent:sent + 1])
                            st[1] += 1
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            sel.unregister(s)
                            s.close()
                            socks.pop(s)
                            self.closed_by_server += 1
        for s in list(socks):
            s.close()
        self.held = len(socks)


def window_p99(records, start, end, kinds):
    values = [r[3] for r in records if start <= r[0] < end and r[1] in kinds and r[2] == "200"]
    return percentile(values, 99), len(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/jwt-issuer"))
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL server (postgres://user@host:port): two instances "
                             "share a new database on it, and it is restarted mid-run")
    parser.add_argument("--pg-restart-cmd", default=None,
                        help="how to stop and start PostgreSQL: a command taking `stop` or "
                             "`start` (default: pg_ctlcluster for the one cluster here)")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--slow", type=int, default=500, help="idle slow connections")
    parser.add_argument("--rates", default="login=4,refresh=40,jwks=50,revoke=2",
                        help="requests per second of each kind")
    parser.add_argument("--json", help="write the summary here too")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} is missing: cargo build --release")
    if args.seconds < 60:
        parser.error("--seconds: at least 60 (the faults need room: the kill alone lasts 10 s)")
    try:
        rates = {k: float(v) for k, v in (p.split("=") for p in args.rates.split(","))}
    except ValueError:
        parser.error(f"--rates: expected kind=N,... (e.g. login=4,refresh=40), not {args.rates!r}")
    missing = {"login", "refresh", "jwks", "revoke"} - rates.keys()
    if missing or any(v <= 0 for v in rates.values()):
        parser.error(f"--rates needs a positive rate for each of {sorted(missing) or 'its kinds'}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.slow + 200:
        sys.exit(f"the open-files limit {hard} is too low for {args.slow} slow connections")

    pg_cmd = None
    if args.postgres:
        pg_cmd = args.pg_restart_cmd
        if pg_cmd is None:
            if not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"):
                sys.exit("no pg_ctlcluster here: give --pg-restart-cmd")
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            pg_cmd = f"pg_ctlcluster --skip-systemctl-redirect {version} main"

    work = tempfile.mkdtemp(prefix="soak-")
    extra = ["--issuer", ISSUER, "--log-format", "json"]
    if args.postgres:
        dbname = f"soak_{os.getpid()}"
        admin_url = args.postgres.rstrip("/") + "/postgres"
        subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {dbname}"], check=True)
        database = f"{args.postgres.rstrip('/')}/{dbname}"
        keys = os.path.join(work, "keys")
        servers = [Server(args.binary, database, "ES256", work, keys=keys, extra=extra)]
        servers.append(Server(args.binary, database, "ES256", work, keys=keys, extra=extra))
    else:
        database = f"sqlite://{work}/soak.db"
        servers = [Server(args.binary, database, "ES256", work, extra=extra)]
    try:
        ok = run(args, servers, rates, pg_cmd)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
        if args.postgres:
            subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {dbname}"])
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs kept in {work}", file=sys.stderr)
    sys.exit(0 if ok else 1)


def setup(servers):
    """The admin's token (for /admin and introspection) and the users who log in."""
    base = servers[0]
    conn = http.client.HTTPConnection("127.0.0.1", base.port, timeout=30)
    conn.request("POST", "/oauth/token", urllib.parse.urlencode({
        "grant_type": "password", "username": "admin", "password": base.password,
        "audience": f"{ISSUER}/admin"}), FORM)
    response = conn.getresponse()
    body = json.loads(response.read())
    if response.status != 200:
        sys.exit(f"admin login failed: {body}")
    admin = body["access_token"]
    for user in USERS:
        conn.request("POST", "/admin/users", json.dumps({
            "username": user, "password": PASSWORD, "roles": []}),
            {"Content-Type": "application/json", "Authorization": f"Bearer {admin}"})
        response = conn.getresponse()
        answer = response.read()
        if response.status != 201:
            sys.exit(f"creating {user} failed: {response.status} {answer!r}")
    return admin


def run(args, servers, rates, pg_cmd):
    d = args.seconds
    admin = setup(servers)
    t0 = time.monotonic()
    soak = Soak(args, servers, t0)
    soak.admin = admin
    threads = []
    for kind, do in [("login", soak.login), ("refresh", soak.refresh), ("jwks", soak.jwks),
                     ("revoke", soak.revoke)]:
        threads += soak.drive(kind, rates[kind], do)
    for t in threads:
        t.start()
    events = {}  # name -> (start, end)

    def at(t):
        soak.stop.wait(max(0.0, t - soak.now()))

    # Baseline memory, under the steady load, before any fault.
    at(d / 6 - 2)
    baseline = [s.rss_mib() for s in servers]

    # 1. Idle slow connections.
    at(d / 6)
    slow = SlowClients(servers, args.slow)
    slow_thread = threading.Thread(target=slow.run, daemon=True)
    start = soak.now()
    slow_thread.start()
    at(2 * d / 6)
    slow.stop.set()
    slow_thread.join()
    events[f"{args.slow} slow connections"] = (start, soak.now())

    # 2. SIGKILL one instance, start it again 10 s later.
    at(5 * d / 12)
    victim = servers[-1]
    start = soak.now()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    at(5 * d / 12 + 10)
    victim.start()
    events[f"SIGKILL of instance {len(servers)}"] = (start, soak.now())

    # 3. PostgreSQL stopped, started again 6 s later.
    if pg_cmd:
        at(2 * d / 3)
        start = soak.now()
        with soak.lock:
            soak.outage.append([start, None])
        subprocess.run(f"{pg_cmd} stop -m fast", shell=True, check=True)
        at(2 * d / 3 + 6)
        subprocess.run(f"{pg_cmd} start", shell=True, check=True)
        with soak.lock:
            soak.outage[-1][1] = soak.now()
        events["PostgreSQL restart"] = (start, soak.now())

    at(d)
    soak.stop.set()
    for t in threads:
        t.join(15)
    end = soak.now()
    return report(soak, servers, events, end, baseline, slow)


def report(soak, servers, events, end, baseline, slow):
    records = soak.records
    ok = True
    print(f"\n== soak: {len(servers)} instance(s), {end:.0f} s, "
          f"{len(records)} requests")
    by_kind = collections.defaultdict(collections.Counter)
    for _, kind, outcome, _ in records:
        by_kind[kind][outcome] += 1
    print("  outcomes: HTTP status; `refused`: connection refused (a killed instance; the request "
          "went to the other one, if any); `lost`: the connection broke with no answer")
    for kind, outcomes in sorted(by_kind.items()):
        print(f"  {kind:10} " + ", ".join(f"{o}: {n}" for o, n in sorted(outcomes.items())))
    print(f"  slow connections: {slow.opened} opened over the window, "
          f"{slow.closed_by_server} closed by the server, {slow.held} open at its end")
    print("  p99 of answered requests (ms), before / during / after each fault (15 s windows):")
    for label, kinds in [("refresh, JWKS, revoke", ("refresh", "jwks", "revoke")),
                         ("login (argon2id)", ("login",))]:
        print(f"   {label}:")
        for name, (a, b) in events.items():
            before = window_p99(records, a - 15, a, kinds)
            during = window_p99(records, a, b, kinds)
            after = window_p99(records, b, b + 15, kinds)
            print(f"    {name:24} {before[0]:7.1f} / {during[0]:7.1f} / {after[0]:7.1f}"
                  f"   (n = {before[1]} / {during[1]} / {after[1]})")

    # The end-of-run checks, on a settled service.
    state = {}
    time.sleep(2)
    rotated = last_active = doubt = revoked_active = 0
    chains = list(soak.busy_chains)
    doubt_tokens = {token for _, token in soak.in_doubt}
    for i, chain in enumerate(chains):
        ended = chain[-1] is None
        tokens = [t for t in chain if t is not None]
        for token in tokens[:-1]:
            if soak.introspect(state, i, token):
                soak.violation("a rotated refresh token introspects active")
            rotated += 1
        last = tokens[-1]
        active = soak.introspect(state, i, last)
        if ended:
            continue
        if last in doubt_tokens:
            doubt += 1  # rotated with its answer lost, or not rotated: either is fine
        elif not active:
            soak.violation("a chain's live refresh token introspects inactive")
        else:
            last_active += 1
    for i, token in enumerate(soak.revoked):
        if soak.introspect(state, i, token):
            revoked_active += 1
            soak.violation("a revoked token introspects active at the end")
    print(f"  refresh chains: {len(chains)}; {rotated} rotated tokens all inactive, "
          f"{last_active} live tokens active, {doubt} answers lost with a killed connection, "
          f"{len(soak.revoked)} revoked tokens, {revoked_active} of them active")

    time.sleep(3)
    for i, (server, before) in enumerate(zip(servers, baseline)):
        after = server.rss_mib()
        line = f"  instance {i + 1} RSS: baseline {before:.1f} MiB, after {after:.1f} MiB"
        if after > before * 1.10:
            soak.violation(f"instance {i + 1} RSS {after:.1f} MiB not within 10% of "
                           f"its baseline {before:.1f} MiB")
        print(line)
    if soak.violations:
        ok = False
        print(f"FAILED: {len(soak.violations)} violations", file=sys.stderr)
        for v in soak.violations[:30]:
            print("  " + v, file=sys.stderr)
    else:
        print("soak: every check held")
    if soak.args.json:
        with open(soak.args.json, "w") as f:
            json.dump({"requests": len(records),
                       "outcomes": {k: dict(v) for k, v in by_kind.items()},
                       "events": events, "violations": soak.violations}, f, indent=1)
    return ok


if __name__ == "__main__":
    main()
