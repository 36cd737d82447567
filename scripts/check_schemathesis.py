#!/usr/bin/env python3
"""Schema-driven fuzzing: schemathesis against a jwt-issuer on a fresh SQLite database, from the
service's own `GET /openapi.json`.

Two runs, each a bounded number of examples per operation (`--max-examples`, default 10):
- unauthenticated, every operation;
- with an admin access token (for ISSUER/admin), every operation except those that would end
  the token's own session or take the admin's role or password away (they are in the first
  run).
Checks: no 5xx, every status code documented, every response body and content type as
documented. Then the server must still answer /healthz and /readyz, and the admin still log in
and use the admin API. The second run's token must still work after it (else its operations would
have answered only 401 and tested nothing).

    python3 -m venv .venv && .venv/bin/pip install schemathesis   # once
    cargo build
    .venv/bin/python scripts/check_schemathesis.py [--max-examples N]

Exit status 0 when both runs passed and the server is healthy after.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request

import stopping  # scripts/stopping.py: bounded stops, a report when stuck

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("JWT_ISSUER_BIN", os.path.join(HERE, "..", "target", "debug", "jwt-issuer"))
ST = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or shutil.which("schemathesis")
BIND = "127.0.0.1:18141"
BASE = f"http://{BIND}"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Operations that would end the admin token's session or its powers (revoking the key that
# signed it: the stateful phase finds kids in GET /admin/keys): fuzzed unauthenticated only.
SELF_DESTRUCTIVE = [
    "--exclude-path", "/admin/keys/{kid}/revoke",
    "--exclude-path", "/me/sessions",
    "--exclude-path", "/me/sessions/{id}",
    "--exclude-path", "/me/password",
    "--exclude-path", "/admin/users/{username}",
    "--exclude-path", "/admin/users/{username}/password",
    "--exclude-path", "/admin/users/{username}/sessions",
    "--exclude-path", "/oauth/revoke",
    "--exclude-path", "/api/token/blacklist/",
]


def get(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as r:
        return r.status, json.load(r)


def admin_token(password):
    form = urllib.parse.urlencode({"grant_type": "password", "username": "admin", "password": password,
                                   "audience": BASE + "/admin"}).encode()
    with urllib.request.urlopen(BASE + "/oauth/token", data=form, timeout=30) as r:
        return json.load(r)["access_token"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-examples", type=int, default=10)
    args = parser.parse_args()
    if not ST:
        sys.exit("schemathesis is not installed (pip install schemathesis)")
    work = tempfile.mkdtemp(prefix="jwt-issuer-schemathesis-")
    keys = os.path.join(work, "keys")
    log = open(os.path.join(work, "serve.log"), "w")
    server = subprocess.Popen(
        [BIN, "serve", "--bind", BIND, "--database", "sqlite://" + os.path.join(work, "issuer.db"),
         "--keys-dir", keys,
         # The fuzzer logs in with wrong passwords thousands of times from one address.
         "--throttle-per-address", "100000", "--throttle-per-user-address", "10000",
         "--throttle-per-user", "1000000"],
        stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                get("/healthz")
                break
            except Exception:
                if server.poll() is not None or time.time() > deadline:
                    sys.exit(f"jwt-issuer did not start; see {log.name}")
                time.sleep(0.2)
        password = open(os.path.join(keys, "initial-admin-password")).read().strip()
        common = [ST, "run", BASE + "/openapi.json", "--checks", CHECKS,
                  "--max-examples", str(args.max_examples), "--no-color", "--seed", "1",
                  "--request-timeout", "30"]
        token = admin_token(password)
        runs = [
            ("unauthenticated", common),
            ("as admin", common + ["--header", f"Authorization: Bearer {token}"] + SELF_DESTRUCTIVE),
        ]
        failed = []
        for name, cmd in runs:
            print(f"== schemathesis, {name}", flush=True)
            started = time.time()
            result = subprocess.run(cmd, capture_output=True, text=True)
            out = result.stdout + result.stderr
            summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
            print(summary.rstrip(), flush=True)
            print(f"({time.time() - started:.0f} s)")
            if result.returncode != 0:
                print(out[-20000:])
                failed.append(name)
        status, health = get("/healthz")
        ready_status, ready = get("/readyz")
        # The token the second run used still works: nothing it fuzzed took it away (else its
        # operations would have answered only 401 and tested nothing).
        req = urllib.request.Request(BASE + "/admin/users", headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as e:
            failed.append(f"the admin token stopped working during the run ({e.code})")
        admin_token(password)
        print(f"after: /healthz {status} {health['status']}, /readyz {ready_status} {ready['status']}, "
              "the admin logs in and lists users")
        if server.poll() is not None:
            failed.append("the server exited")
        if failed:
            sys.exit(f"schemathesis failed: {', '.join(failed)}; server log: {log.name}")
        print("schemathesis: no failures")
    finally:
        stopping.stop(server, "jwt-issuer serve", log=log.name)
    shutil.rmtree(work, ignore_errors=True)  # only once it passed: a failure keeps the log


if __name__ == "__main__":
    main()
