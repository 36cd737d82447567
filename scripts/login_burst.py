#!/usr/bin/env python3
"""A burst of password logins against a fresh jwt-issuer, with the process's memory.

Starts the given binary on a temporary SQLite database (throttling relaxed so that every login
is hashed), fires N logins (half with the right password, half wrong) from CONC threads, and
prints the rate and the server's resident memory: idle, peak during the burst, and 5 s after.
The first piece of the load harness (issue 12); only the Python standard library is needed.

    cargo build --release
    python3 scripts/login_burst.py target/release/jwt-issuer [N=400] [CONC=64]
"""
import os, shutil, subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 400
CONC = int(sys.argv[3]) if len(sys.argv) > 3 else 64

work = tempfile.mkdtemp(prefix="jwt-issuer-burst-")
port = 18400 + os.getpid() % 100
base = f"http://127.0.0.1:{port}"
server = subprocess.Popen(
    [BIN, "serve", "--bind", f"127.0.0.1:{port}", "--database", f"sqlite://{work}/issuer.db",
     "--keys-dir", f"{work}/keys", "--throttle-per-address", "100000",
     "--throttle-per-user-address", "10000", "--throttle-per-user", "1000000"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_mib():
    with open(f"/proc/{server.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


try:
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz")
            break
        except Exception:
            time.sleep(0.1)
    else:
        sys.exit("the server did not start")
    password = open(f"{work}/keys/initial-admin-password").read().strip()
    idle, peak, done = rss_mib(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.05)

    slots, answered, lock = threading.Semaphore(CONC), [0], threading.Lock()

    def login(i):
        with slots:
            form = {"grant_type": "password", "username": "admin",
                    "password": password if i % 2 == 0 else "wrong password"}
            try:
                urllib.request.urlopen(urllib.request.Request(
                    base + "/oauth/token", data=urllib.parse.urlencode(form).encode()), timeout=120)
            except urllib.error.HTTPError as e:
                if e.code != 400:
                    raise
            with lock:
                answered[0] += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.time()
    threads = [threading.Thread(target=login, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - started
    time.sleep(5)
    after = rss_mib()
    done.set()
    watcher.join()
    print(f"{answered[0]}/{N} logins at {CONC} concurrent in {took:.1f} s: {N / took:.1f}/s; "
          f"RSS idle {idle} MiB, peak {peak[0]} MiB, 5 s after {after} MiB")
finally:
    server.terminate()
    server.wait()
    shutil.rmtree(work)
