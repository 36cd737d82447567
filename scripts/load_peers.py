"""The peers of scripts/load.py --peers, measured on the same machine in the same run:
djangorestframework-simplejwt 5.5.1 under gunicorn (5 sync workers) with argon2id at our
parameters (m=19456 KiB, t=2, p=1) and rotation with blacklisting on, and node-oidc-provider
9.13.3's JWKS. Both are installed into the run's temporary folder (pip into a virtual
environment, npm into a node_modules of its own); nothing is kept.
"""
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request

SIMPLEJWT = "djangorestframework-simplejwt==5.5.1"
OIDC_PROVIDER = "oidc-provider@9.13.3"
PASSWORD = "a password of the usual length"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, proc, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"{what} exited at start-up")
            time.sleep(0.2)
    sys.exit(f"{what} did not start within 60 s")


def rss_of_tree(pid):
    """RSS of a process and its children (gunicorn's workers), MiB."""
    total = 0
    pids = [pid]
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        pids += [int(c) for c in children]
    except FileNotFoundError:
        return 0.0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def django_project(root, alg, keys):
    os.makedirs(os.path.join(root, "peer"), exist_ok=True)
    open(os.path.join(root, "peer", "__init__.py"), "w").close()
    with open(os.path.join(root, "peer", "settings.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            SECRET_KEY = "load-test-only"
            DEBUG = False
            ALLOWED_HOSTS = ["127.0.0.1"]
            INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes",
                              "rest_framework", "rest_framework_simplejwt.token_blacklist"]
            MIDDLEWARE = []
            ROOT_URLCONF = "peer.urls"
            DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                      "NAME": {os.path.join(root, "db.sqlite3")!r}}}}}
            USE_TZ = True
            PASSWORD_HASHERS = ["peer.hashers.SameAsJwtIssuer"]
            SIMPLE_JWT = {{
                "ALGORITHM": {alg!r},
                "SIGNING_KEY": open({keys[0]!r}).read(),
                "VERIFYING_KEY": open({keys[1]!r}).read(),
                "ROTATE_REFRESH_TOKENS": True,
                "BLACKLIST_AFTER_ROTATION": True,
            }}
        """))
    with open(os.path.join(root, "peer", "hashers.py"), "w") as f:
        f.write(textwrap.dedent("""
            from django.contrib.auth.hashers import Argon2PasswordHasher

            class SameAsJwtIssuer(Argon2PasswordHasher):
                # jwt-issuer's argon2id parameters (Django's own default is m=102400, p=8).
                time_cost = 2
                memory_cost = 19456
                parallelism = 1
        """))
    with open(os.path.join(root, "peer", "urls.py"), "w") as f:
        f.write(textwrap.dedent("""
            from django.urls import path
            from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

            urlpatterns = [
                path("api/token/", TokenObtainPairView.as_view()),
                path("api/token/refresh/", TokenRefreshView.as_view()),
            ]
        """))
    with open(os.path.join(root, "peer", "wsgi.py"), "w") as f:
        f.write("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'peer.settings')\n"
                "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n")


def measure_simplejwt(work, wrk, peak_cls, rows, rss):
    venv = os.path.join(work, "peer-venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "django<6",
                    "djangorestframework", SIMPLEJWT, "gunicorn", "argon2-cffi", "cryptography"],
                   check=True)
    for alg in ("RS256", "ES256"):
        root = os.path.join(work, f"simplejwt-{alg}")
        os.makedirs(root, exist_ok=True)
        keys = (os.path.join(root, "private.pem"), os.path.join(root, "public.pem"))
        kind = "rsa_keygen_bits:2048" if alg == "RS256" else "ec_paramgen_curve:P-256"
        algo = "RSA" if alg == "RS256" else "EC"
        subprocess.run(["openssl", "genpkey", "-algorithm", algo, "-pkeyopt", kind, "-out", keys[0]],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", keys[0], "-pubout", "-out", keys[1]],
                       check=True, capture_output=True)
        django_project(root, alg, keys)
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="peer.settings", PYTHONPATH=root)
        subprocess.run([py, "-m", "django", "migrate", "-v0"], env=env, check=True)
        subprocess.run([py, "-c", "import django; django.setup(); "
                        "from django.contrib.auth.models import User; "
                        f"User.objects.create_user('admin', password={PASSWORD!r})"],
                       env=env, check=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gunicorn = subprocess.Popen(
            [os.path.join(venv, "bin", "gunicorn"), "-w", "5", "-b", f"127.0.0.1:{port}",
             "--log-level", "warning", "peer.wsgi"],
            env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(base + "/api/token/", gunicorn, "gunicorn")
            time.sleep(1)
            idle = rss_of_tree(gunicorn.pid)
            obtain = base + "/api/token/"
            login_env = {"LOAD_USERNAME": "admin", "LOAD_PASSWORD": PASSWORD, "LOAD_JSON": "1",
                         "LOAD_CONTENT_TYPE": "application/json"}
            with peak_cls(lambda: rss_of_tree(gunicorn.pid)) as peak:
                if alg == "RS256":
                    rows["login (argon2id)"] = wrk(obtain, "login.lua", login_env)
                files = []
                for run in ("warm-up", "measured"):
                    tokens = []
                    for _ in range(128):
                        req = urllib.request.Request(
                            obtain, data=json.dumps({"username": "admin", "password": PASSWORD}).encode(),
                            headers={"Content-Type": "application/json"})
                        tokens.append(json.load(urllib.request.urlopen(req))["refresh"])
                    files.append(os.path.join(root, f"tokens-{run}"))
                    with open(files[-1], "w") as f:
                        f.write("\n".join(tokens) + "\n")
                rows[f"refresh {alg}"] = wrk(base + "/api/token/refresh/", "refresh.lua",
                                             {"LOAD_TOKENS": files[1], "LOAD_STYLE": "simplejwt"},
                                             warmup_env={"LOAD_TOKENS": files[0]})
            rss[f"simplejwt {alg} (gunicorn, 5 workers)"] = {
                "idle": idle, "peak": peak.peak, "after": rss_of_tree(gunicorn.pid)}
        finally:
            gunicorn.terminate()
            gunicorn.wait()
        print(f"  simplejwt {alg}: done", file=sys.stderr)


def measure_oidc_provider(work, wrk, rows):
    root = os.path.join(work, "oidc-provider")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "package.json"), "w") as f:
        json.dump({"name": "peer", "private": True, "type": "module"}, f)
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", OIDC_PROVIDER],
                   cwd=root, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    with open(os.path.join(root, "server.mjs"), "w") as f:
        f.write(textwrap.dedent(f"""
            import {{ generateKeyPairSync }} from 'node:crypto';
            import Provider from 'oidc-provider';
            const rsa = generateKeyPairSync('rsa', {{ modulusLength: 2048 }}).privateKey.export({{ format: 'jwk' }});
            const ec = generateKeyPairSync('ec', {{ namedCurve: 'P-256' }}).privateKey.export({{ format: 'jwk' }});
            const provider = new Provider('http://127.0.0.1:{port}', {{
              jwks: {{ keys: [{{ ...rsa, kid: 'rsa', use: 'sig' }}, {{ ...ec, kid: 'ec', use: 'sig' }}] }},
            }});
            provider.listen({port}, '127.0.0.1');
        """))
    node = subprocess.Popen(["node", "server.mjs"], cwd=root, env=dict(os.environ, NODE_ENV="production"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/jwks", node, "oidc-provider")
        rows["jwks"] = wrk(f"http://127.0.0.1:{port}/jwks", "get.lua")
    finally:
        node.terminate()
        node.wait()
    print("  oidc-provider: done", file=sys.stderr)


def measure(work, wrk, peak_cls):
    """Returns ({peer: {row: wrk figures}}, {peer: rss})."""
    simplejwt, oidc, rss = {}, {}, {}
    measure_simplejwt(work, wrk, peak_cls, simplejwt, rss)
    measure_oidc_provider(work, wrk, oidc)
    return {"simplejwt 5.5.1": simplejwt, "oidc-provider 9.13.3": oidc}, rss
