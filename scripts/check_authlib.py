#!/usr/bin/env python3
"""Authlib, a strict third-party OAuth client, against jwt-issuer's client authentication.

Starts one instance on a temporary SQLite database, registers clients with the CLI, and checks
with Authlib's `OAuth2Session`:
- client_credentials with client_secret_basic and with client_secret_post (sub and client_id
  are the client's id, no refresh token, the client's audience);
- a wrong secret is refused (401 invalid_client);
- introspection by client authentication (RFC 7662 §2.1): active for a token meant for the
  client's audience, inactive for another service's token;
- the password grant and a refresh through a public client (token_endpoint_auth_method none).

    python3 -m venv .venv && .venv/bin/pip install authlib requests   # once
    cargo build                       # or set JWT_ISSUER_BIN to another build
    .venv/bin/python scripts/check_authlib.py

Exit status 0 when every check passed.
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time, urllib.request

from authlib.integrations.requests_client import OAuth2Session

import stopping  # scripts/stopping.py: bounded stops, a report when stuck

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("JWT_ISSUER_BIN", os.path.join(HERE, "..", "target", "debug", "jwt-issuer"))
BIND = "127.0.0.1:18131"
BASE = f"http://{BIND}"
TOKEN_URL = BASE + "/oauth/token"

work = tempfile.mkdtemp(prefix="jwt-issuer-authlib-")
common = ["--database", "sqlite://" + os.path.join(work, "issuer.db"), "--keys-dir", os.path.join(work, "keys"),
          "--bind", BIND]
failures = 0


def cli(*args, stdin=""):
    out = stopping.run([BIN, *args, *common], f"jwt-issuer {' '.join(args)}", stdin=stdin)
    if out.returncode != 0:
        sys.exit(f"jwt-issuer {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def check(what, ok, detail=""):
    global failures
    print(("ok      " if ok else "FAILED  ") + what + (f" ({detail})" if detail and not ok else ""))
    failures += 0 if ok else 1


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


cli("scope", "add", "reports:read")
out = cli("client", "add", "reporting", "--generate-secret", "--audience", "https://reports.internal",
          "--scope", "reports:read")
secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret: "))
cli("client", "add", "spa", "--scope", "reports:read")

log = open(os.path.join(work, "serve.log"), "w")
server = subprocess.Popen([BIN, "serve", *common], stdout=log, stderr=log)
try:
    for _ in range(100):
        try:
            urllib.request.urlopen(BASE + "/readyz", timeout=5)
            break
        except Exception:
            time.sleep(0.1)
    else:
        sys.exit("the server did not start; see " + log.name)

    for method in ("client_secret_basic", "client_secret_post"):
        session = OAuth2Session("reporting", secret, token_endpoint_auth_method=method, scope="reports:read")
        token = session.fetch_token(TOKEN_URL, grant_type="client_credentials")
        c = claims(token["access_token"])
        check(f"client_credentials with {method}",
              c["sub"] == "reporting" and c["client_id"] == "reporting" and "refresh_token" not in token
              and c["aud"] == "https://reports.internal" and token["scope"] == "reports:read", json.dumps(c))

    try:
        OAuth2Session("reporting", "w" * 43).fetch_token(TOKEN_URL, grant_type="client_credentials")
        check("a wrong secret is refused", False, "it was accepted")
    except Exception as e:
        check("a wrong secret is refused", "invalid_client" in str(e), str(e))

    # A user token through the public client, then a refresh with Authlib.
    pw = open(os.path.join(work, "keys", "initial-admin-password")).read().strip()
    public = OAuth2Session("spa", token_endpoint_auth_method="none", scope="reports:read")
    user_token = public.fetch_token(TOKEN_URL, username="admin", password=pw)
    c = claims(user_token["access_token"])
    check("password grant through a public client", c["client_id"] == "spa" and c["scope"] == "reports:read"
          and "refresh_token" in user_token, json.dumps(c))
    refreshed = public.refresh_token(TOKEN_URL, refresh_token=user_token["refresh_token"])
    check("refresh through a public client", refreshed["refresh_token"] != user_token["refresh_token"])

    # Introspection by client authentication: only tokens meant for the client's audience.
    rs = OAuth2Session("reporting", secret, token_endpoint_auth_method="client_secret_basic")
    ours = rs.fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
    seen = rs.introspect_token(BASE + "/oauth/introspect", token=ours).json()
    check("introspection of a token for the client's audience", seen.get("active") is True, json.dumps(seen))
    other = rs.introspect_token(BASE + "/oauth/introspect", token=user_token["access_token"]).json()
    check("introspection of another audience's token", other == {"active": False}, json.dumps(other))
finally:
    stopping.stop(server, "jwt-issuer serve", log=log.name)

print(f"{failures} failures")
if not failures:
    shutil.rmtree(work, ignore_errors=True)  # a failed run keeps it: the server's log
sys.exit(1 if failures else 0)
