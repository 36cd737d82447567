#!/usr/bin/env python3
"""jwt-issuer with the real djangorestframework-simplejwt, two ways (issue 13):

1. A Django API authenticating with simplejwt's own `JWTAuthentication` (settings: api/settings.py,
   only the SIMPLE_JWT block of the README) accepts access tokens from jwt-issuer's
   `/api/token/` and maps them to the right Django user, and so does
   `JWTStatelessUserAuthentication`; tampered, expired and foreign tokens get 401 from both.
   For RS256 and for ES256.
2. simplejwt's documented front-end flow (obtain, refresh, verify, blacklist, and the errors a
   front-end can meet) runs against simplejwt's own views and against jwt-issuer, and the
   answers are compared case by case: status, WWW-Authenticate, and body (token values aside).

    python3 -m venv .venv && .venv/bin/pip install -r examples/django-api/requirements.txt
    cargo build                      # or set JWT_ISSUER_BIN to another build
    .venv/bin/python examples/django-api/check.py

Exit status 0 when every check passed.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import stopping  # noqa: E402  (scripts/stopping.py: bounded stops, a report when stuck)
BIN = os.environ.get("JWT_ISSUER_BIN", os.path.join(ROOT, "target", "debug", "jwt-issuer"))
PASSWORD = "alice's long password"
BOUNDARY = "----checkboundary"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Issuer:
    """One jwt-issuer process."""

    def __init__(self, work, alg, issuer=None, extra=()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.common = ["--database", f"sqlite://{work}/issuer.db", "--keys-dir", f"{work}/keys"]
        args = [BIN, "serve", "--bind", f"127.0.0.1:{self.port}", "--alg", alg,
                "--issuer", issuer or self.base, *self.common, *extra]
        self.log = open(os.path.join(work, f"issuer-{self.port}.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    sys.exit(f"jwt-issuer did not start; see {self.log.name}")
                time.sleep(0.1)

    def cli(self, *args, stdin=""):
        out = stopping.run([BIN, *args, *self.common], f"jwt-issuer {' '.join(args)}", stdin=stdin)
        if out.returncode != 0:
            sys.exit(f"jwt-issuer {' '.join(args)} failed: {out.stderr}")

    def access_token(self):
        status, _, body = http(self.base, "POST", "/api/token/", "application/json",
                               json.dumps({"username": "alice", "password": PASSWORD}))
        assert status == 200, body
        return body["access"]

    def stop(self):
        stopping.stop(self.proc, f"jwt-issuer serve on port {self.port}", log=self.log.name)


def http(base, method, path, content_type=None, body=None, headers=None):
    """(status, WWW-Authenticate, JSON body) of one request to a live server."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("WWW-Authenticate"), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate"), json.loads(e.read() or b"null")


def django_setup(work, issuer_url, alg, reference_keys=None):
    """Starts Django in this process with api/settings.py."""
    os.environ["JWT_ISSUER_URL"] = issuer_url
    os.environ["JWT_ISSUER_ALG"] = alg
    os.environ["DJANGO_DB"] = os.path.join(work, "django.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "api.settings"
    if reference_keys:
        os.environ["SIMPLEJWT_SIGNING_KEY"], os.environ["SIMPLEJWT_VERIFYING_KEY"] = reference_keys
    sys.path.insert(0, HERE)
    import django
    django.setup()
    if reference_keys:
        # simplejwt's own views sign with SIGNING_KEY and verify with VERIFYING_KEY.
        from django.conf import settings
        settings.SIMPLE_JWT.pop("JWK_URL")
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    User.objects.create_user("alice", password=PASSWORD)


# ---- 1. Django verifies our access tokens -------------------------------------------------

def backend(alg):
    """Run in a child process (Django is set up once per process)."""
    work = tempfile.mkdtemp(prefix="jwt-issuer-django-")
    issuer = Issuer(work, alg)
    # The same keys and issuer, tokens valid for one second: expired ones.
    short = Issuer(work, alg, issuer=issuer.base, extra=["--access-ttl", "1"])
    elsewhere = tempfile.mkdtemp(prefix="jwt-issuer-foreign-")
    foreign = Issuer(elsewhere, alg, issuer=issuer.base)
    failures = ["not run to the end"]
    try:
        issuer.cli("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        foreign.cli("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        django_setup(work, issuer.base, alg)
        from django.test import Client
        client = Client()

        def whoami(token, path="/whoami/"):
            r = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
            return r.status_code, r.json()

        failures = []
        token = issuer.access_token()
        status, body = whoami(token)
        from django.contrib.auth.models import User
        if (status, body) != (200, {"username": "alice", "id": User.objects.get(username="alice").pk}):
            failures.append(f"a token from /api/token/: {status} {body}")
        status, body = whoami(token, "/whoami-stateless/")
        if (status, body) != (200, {"username": "alice"}):
            failures.append(f"JWTStatelessUserAuthentication: {status} {body}")
        head, payload, signature = token.split(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        expired = short.access_token()
        time.sleep(2.5)
        for name, bad in [
            ("tampered signature", f"{head}.{payload}.{flipped}"),
            ("tampered payload", f"{head}.{payload[:-2]}xx.{signature}"),
            ("expired", expired),
            ("foreign (another issuer's keys)", foreign.access_token()),
            ("not a token", "garbage"),
        ]:
            for path in ("/whoami/", "/whoami-stateless/"):
                status, body = whoami(bad, path)
                if status != 401:
                    failures.append(f"{name} at {path}: {status} {body}")
        print(f"{alg}: Django + simplejwt's JWTAuthentication: {'ok' if not failures else 'FAILED'}")
        for f in failures:
            print(f"  {f}")
        return 1 if failures else 0
    finally:
        for server in (issuer, short, foreign):
            server.stop()
        if not failures:
            tidy(work, elsewhere)


# ---- 2. The front-end flow against both ---------------------------------------------------

def flow(send):
    """simplejwt's front-end flow, case by case: [(case, status, WWW-Authenticate, body)]."""
    out = []

    def case(name, method, path, content_type=None, body=None):
        status, challenge, answer = send(method, path, content_type, body)
        out.append((name, status, challenge, answer))
        return answer

    def obtain_json(fields):
        return ("POST", "/api/token/", "application/json", json.dumps(fields))

    pair = case("obtain (JSON)", *obtain_json({"username": "alice", "password": PASSWORD}))
    case("obtain (form)", "POST", "/api/token/", "application/x-www-form-urlencoded",
         urllib.parse.urlencode({"username": "alice", "password": PASSWORD}))
    multipart = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n"
                 f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{PASSWORD}\r\n"
                 f"--{BOUNDARY}--\r\n")
    case("obtain (multipart)", "POST", "/api/token/", f"multipart/form-data; boundary={BOUNDARY}", multipart)
    case("obtain, wrong password", *obtain_json({"username": "alice", "password": "not the password"}))
    case("obtain, unknown user", *obtain_json({"username": "nobody", "password": "not the password"}))
    case("obtain, nothing", *obtain_json({}))
    case("obtain, null and blank", *obtain_json({"username": None, "password": "  "}))
    case("obtain, not strings", *obtain_json({"username": True, "password": ["x"]}))
    case("obtain, a list", "POST", "/api/token/", "application/json", "[1]")
    case("obtain, malformed JSON", "POST", "/api/token/", "application/json", "{\"username\": ")
    case("obtain, text/plain", "POST", "/api/token/", "text/plain", "username=alice")
    case("obtain, GET", "GET", "/api/token/")
    case("refresh, nothing", "POST", "/api/token/refresh/", "application/json", "{}")
    first, access = pair["refresh"], pair["access"]
    rotated = case("refresh", "POST", "/api/token/refresh/", "application/json", json.dumps({"refresh": first}))
    case("refresh, not a token", "POST", "/api/token/refresh/", "application/json", json.dumps({"refresh": "garbage"}))
    case("refresh, an access token", "POST", "/api/token/refresh/", "application/json", json.dumps({"refresh": access}))
    case("verify, the access token", "POST", "/api/token/verify/", "application/json", json.dumps({"token": access}))
    case("verify, the new refresh token", "POST", "/api/token/verify/", "application/json",
         json.dumps({"token": rotated["refresh"]}))
    case("verify, the used refresh token", "POST", "/api/token/verify/", "application/json", json.dumps({"token": first}))
    case("verify, not a token", "POST", "/api/token/verify/", "application/json", json.dumps({"token": "garbage"}))
    case("verify, nothing", "POST", "/api/token/verify/", "application/json", "{}")
    case("blacklist", "POST", "/api/token/blacklist/", "application/json", json.dumps({"refresh": rotated["refresh"]}))
    case("blacklist, again", "POST", "/api/token/blacklist/", "application/json",
         json.dumps({"refresh": rotated["refresh"]}))
    case("refresh, the blacklisted token", "POST", "/api/token/refresh/", "application/json",
         json.dumps({"refresh": rotated["refresh"]}))
    # Last: jwt-issuer answers this the same, and (deliberately stronger) also revokes the
    # token's whole family, which simplejwt does not; cases after it would differ for that.
    case("refresh, the used token", "POST", "/api/token/refresh/", "application/json", json.dumps({"refresh": first}))
    return out


def reference():
    """simplejwt's own answers (child process), as JSON on stdout."""
    work = tempfile.mkdtemp(prefix="simplejwt-reference-")
    private = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                             capture_output=True, text=True, check=True).stdout
    public = subprocess.run(["openssl", "pkey", "-pubout"], input=private, capture_output=True, text=True,
                            check=True).stdout
    django_setup(work, "http://reference.test", "RS256", reference_keys=(private, public))
    from django.test import Client
    client = Client()

    def send(method, path, content_type, body):
        kwargs = {"content_type": content_type} if content_type else {}
        if method == "GET":
            r = client.get(path)
        else:
            r = client.generic(method, path, data=body or "", **kwargs)
        return r.status_code, r.headers.get("WWW-Authenticate"), (r.json() if r.content else None)

    print(json.dumps(flow(send)))
    tidy(work)


def tidy(*folders):
    """Removes a passed check's scratch folders (a failed one keeps them: the servers' logs)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def shape(answer):
    """A body with token values replaced, and Python's JSON error text cut off."""
    if isinstance(answer, dict):
        out = {}
        for k, v in answer.items():
            if k in ("access", "refresh") and isinstance(v, str):
                out[k] = "<token>"
            elif k == "detail" and isinstance(v, str) and v.startswith("JSON parse error - "):
                out[k] = "JSON parse error - …"
            else:
                out[k] = v
        return out
    return answer


def compare():
    reference = stopping.run([sys.executable, __file__, "reference"], "simplejwt's reference flow",
                             timeout=300)
    if reference.returncode != 0:
        sys.exit(f"simplejwt's reference flow failed: {reference.stderr}")
    theirs = json.loads(reference.stdout)
    work = tempfile.mkdtemp(prefix="jwt-issuer-compare-")
    issuer = Issuer(work, "RS256")
    try:
        issuer.cli("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        ours = flow(lambda method, path, ct, body: http(issuer.base, method, path, ct, body))
    finally:
        issuer.stop()
    tidy(work)
    failures = 0
    print(f"{'case':34} {'simplejwt 5.5.1':>16} {'jwt-issuer':>11}")
    for (name, s1, c1, b1), (_, s2, c2, b2) in zip(theirs, ours):
        same = (s1, c1, shape(b1)) == (s2, c2, shape(b2))
        failures += not same
        print(f"{name:34} {s1:>16} {s2:>11}  {'same' if same else 'DIFFERENT'}")
        if not same:
            print(f"    simplejwt:  {c1!r} {json.dumps(shape(b1))}")
            print(f"    jwt-issuer: {c2!r} {json.dumps(shape(b2))}")
    return 1 if failures else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "reference":
        reference()
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "backend":
        return backend(sys.argv[2])
    failed = 0
    for alg in ("RS256", "ES256"):
        # Each in a process of its own (Django is set up once per process), bounded: one stuck
        # is reported with its threads' stacks and fails the check.
        child = subprocess.Popen([sys.executable, __file__, "backend", alg])
        failed |= stopping.wait(child, f"the {alg} check", 300)
    failed |= compare()
    print("all checks passed" if not failed else "some checks FAILED")
    return failed


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, not at exit
    sys.exit(main())
