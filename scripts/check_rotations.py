#!/usr/bin/env python3
"""Third-party verifiers across every kind of rotation.

Starts two jwt-issuer instances on one database (as behind a load balancer), keeps ONE
long-lived PyJWT `PyJWKClient` on instance A and (if Node and jose are installed) one jose
`createRemoteJWKSet` on instance B, and verifies every token minted so far after: a manual
rotation, an algorithm switch to ES256, a scheduled rotation, and an emergency revocation of
the active key. Tokens of the revoked key are expected to fail; every other token must verify.

    pip install 'pyjwt[crypto]'; (cd scripts && npm install jose)   # once
    cargo build --release
    python3 scripts/check_rotations.py [DATABASE_URL]              # default: a temp SQLite file

Exit status 0 when every check passed.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.parse, urllib.request

import jwt

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("JWT_ISSUER_BIN", os.path.join(HERE, "..", "target", "release", "jwt-issuer"))
A, B = "http://127.0.0.1:18101", "http://127.0.0.1:18102"
ISSUER = A
ROTATE_EVERY = 20

work = tempfile.mkdtemp(prefix="jwt-issuer-check-")
db = sys.argv[1] if len(sys.argv) > 1 else "sqlite://" + os.path.join(work, "issuer.db")
common = ["--database", db, "--keys-dir", os.path.join(work, "keys"), "--issuer", ISSUER,
          "--rotate-every", f"{ROTATE_EVERY}s"]
procs = []


def start(bind):
    log = open(os.path.join(work, bind.replace(":", "_") + ".log"), "w")
    procs.append(subprocess.Popen([BIN, "serve", "--bind", bind, *common], stdout=log, stderr=log))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{bind}/readyz")
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"instance {bind} did not start; see {log.name}")


def call(url, form=None, token=None, body=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    data = b""
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form:
        data = urllib.parse.urlencode(form).encode()
    return json.load(urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method="POST")))


def login(base, audience=None):
    pw = open(os.path.join(work, "keys", "initial-admin-password")).read().strip()
    form = {"grant_type": "password", "username": "admin", "password": pw}
    if audience:
        form["audience"] = audience
    return call(base + "/oauth/token", form)["access_token"]


def admin_login(base):
    """A token for the admin API, which accepts only its own audience."""
    return login(base, ISSUER + "/admin")


failures, checks, tokens = 0, 0, []
py_jwks = None  # created once, after the first tokens exist


def node_verify(toks):
    if not shutil.which("node") or not os.path.isdir(os.path.join(HERE, "node_modules", "jose")):
        return "node/jose not installed: skipped"
    out = subprocess.run(["node", os.path.join(HERE, "verify_tokens.mjs"), B + "/.well-known/jwks.json", ISSUER],
                         input="\n".join(toks), capture_output=True, text=True, cwd=HERE)
    return (out.stdout + out.stderr).strip()


def check(label, revoked_kid=None):
    global failures, checks, py_jwks
    for base in (A, B):
        tokens.append(login(base))
    if py_jwks is None:
        py_jwks = jwt.PyJWKClient(A + "/.well-known/jwks.json")
    live = [t for t in tokens if jwt.get_unverified_header(t)["kid"] != revoked_kid]
    for t in live:
        checks += 1
        try:
            key = py_jwks.get_signing_key_from_jwt(t)
            jwt.decode(t, key, algorithms=["RS256", "ES256"], issuer=ISSUER, audience=ISSUER)
        except Exception as e:
            failures += 1
            print("  PyJWT FAILED:", e)
    node = node_verify(live)
    if "skipped" not in node and not node.endswith(", 0 failed"):
        failures += 1
    print(f"{label}: PyJWT {len(live)} tokens checked | jose: {node}")


try:
    start(A[7:])
    start(B[7:])
    check("start")
    admin = admin_login(A)
    call(A + "/admin/keys/rotate", token=admin)
    time.sleep(1.5)
    check("manual rotation through A")
    call(B + "/admin/keys/rotate", token=admin, body={"alg": "ES256"})
    time.sleep(1.5)
    check("switch to ES256 through B")
    time.sleep(ROTATE_EVERY + 2)
    check("scheduled rotation")
    active = jwt.get_unverified_header(login(A))["kid"]
    call(A + f"/admin/keys/{active}/revoke", token=admin_login(A))
    time.sleep(1.5)
    check("emergency revocation of the active key", revoked_kid=active)
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
print(f"{checks} PyJWT checks, {failures} failures")
sys.exit(1 if failures else 0)
