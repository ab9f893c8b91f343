"""The LTI 1.3 launch chain end to end, against real code (not part of CI).

Starts, on 127.0.0.1 in a temporary folder:
  * tests/support/lti13_platform.py (edX's LTI 1.3 platform code; the lti13 venv);
  * a real JupyterHub 6 (the hub venv) with jupyterhub-ltiauthenticator's LTI13Authenticator,
    configured with lti13_hub_login.HUB_CONFIG for the platform's edX peer, auth state on,
    and a service holding `admin:auth_state` to read it back;
then, through tests/support/lti13_hub_login.py (the real OIDC third-party login):
  1. a good launch logs in the user named by the launch's email, and the Hub's REST API shows
     that user's auth state: the verified id_token (sub, iss, aud, email, the deployment id,
     resource link and LTI AGS endpoint claims, the line item URL of the platform's /_setup);
  2. a launch signed with a forged key (same kid) is refused: no user, no auth state;
  3. an expired launch (signed by the platform's key) is refused: no user, no auth state.
Stops everything it started, by PID (the proxy by its pid file). Prints each step's time.

usage: python3 tests/support/lti13_chain_selftest.py   (stdlib only)
       needs scripts/setup-jupyterhub.sh ($OTTER_HUB_VENV, default ~/.cache/otter-service/hub-venv)
       and scripts/setup-lti13-platform.sh ($LTI13_VENV, default ~/.cache/otter-service/lti13-venv).
       KEEP=1 keeps the temporary folder (hub and platform logs). Exit status 0 = all passed.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
HOME = os.path.expanduser("~")
HUB_VENV = os.environ.get("OTTER_HUB_VENV") or os.path.join(HOME, ".cache/otter-service/hub-venv")
LTI13_VENV = os.environ.get("LTI13_VENV") or os.path.join(HOME, ".cache/otter-service/lti13-venv")
ADMIN_TOKEN = "lti13-chain-selftest-admin-token-0123456789"
LABEL = "demo1"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
DEPLOYMENT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
RESOURCE_LINK_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/resource_link"
MESSAGE_TYPE_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/message_type"
FAILURES = []
T0 = time.monotonic()

sys.path.insert(0, HERE)
# The snippet only: importing the login script needs `requests`, which stdlib python may lack.
with open(os.path.join(HERE, "lti13_hub_login.py")) as f:
    source = f.read()
HUB_CONFIG = source.split("HUB_CONFIG = '''", 1)[1].split("'''", 1)[0]


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'}  {what}", flush=True)
    if not ok:
        FAILURES.append(what)


def step(what, since):
    now = time.monotonic()
    print(f"  [{now - T0:6.2f} s] {what}: {now - since:.2f} s", flush=True)
    return now


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


def wait_for(url, proc, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {limit} s")


def stop(proc, what):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # by PID: the Popen object's own process
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print(f"  {what} needed SIGKILL", flush=True)


def run_login(hub_url, platform_url, sub, email, *extra):
    t = time.monotonic()
    cmd = [os.path.join(HUB_VENV, "bin/python"), os.path.join(HERE, "lti13_hub_login.py"),
           "--hub", hub_url, "--platform", platform_url, "--label", LABEL, "--sub", sub, "--email", email,
           "-v", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    print("    " + p.stderr.strip().replace("\n", "\n    "), flush=True)
    lines = p.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"ok": None, "why": "no output"}
    print(f"    -> {json.dumps(result)} (exit {p.returncode}, {time.monotonic() - t:.2f} s)", flush=True)
    return result, p.returncode


def main():
    for path in (os.path.join(HUB_VENV, "bin/jupyterhub"), os.path.join(LTI13_VENV, "bin/python")):
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}: run scripts/setup-jupyterhub.sh and scripts/setup-lti13-platform.sh")
    tmp = tempfile.mkdtemp(prefix="otter-lti13-chain-")
    platform = hub = None
    proxy_pid_file = os.path.join(tmp, "proxy.pid")
    try:
        # The platform: edX's peer. The tool key set URL is for AGS tokens, not used here.
        t = time.monotonic()
        platform_log = open(os.path.join(tmp, "platform.log"), "w")
        platform = subprocess.Popen(
            [os.path.join(LTI13_VENV, "bin/python"), os.path.join(HERE, "lti13_platform.py"),
             "--db", os.path.join(tmp, "platform.sqlite"), "--tool-keyset-url", "http://127.0.0.1:9/unused.json"],
            stdout=subprocess.PIPE, stderr=platform_log, stdin=subprocess.DEVNULL, text=True,
        )
        line = platform.stdout.readline().strip()
        if not line.startswith("LTI13_PLATFORM_PORT="):
            raise SystemExit(f"platform did not start ({line!r}); see {tmp}/platform.log")
        platform_url = f"http://127.0.0.1:{line.split('=', 1)[1]}"
        status, setup = http("POST", platform_url + "/_setup", {"lineitems": [LABEL], "score_maximum": 5})
        check(status == 200, f"platform /_setup ({status})")
        edx = setup["edx"]
        lineitem = edx["lineitems"][LABEL]
        t = step(f"platform started at {platform_url}, /_setup", t)

        # The Hub
        hub_port, api_port, proxy_port = free_port(), free_port(), free_port()
        hub_url = f"http://127.0.0.1:{hub_port}"
        chp = os.path.join(HUB_VENV, "node_modules/.bin/configurable-http-proxy")
        config = f'''
c = get_config()  # noqa
c.JupyterHub.bind_url = "{hub_url}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.pid_file = "{proxy_pid_file}"
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.JupyterHub.log_level = "DEBUG"
# A service that may read users' auth state (as otter-service's role in tests/api/hub.rs)
c.JupyterHub.services = [{{"name": "lti13-selftest-admin", "api_token": "{ADMIN_TOKEN}"}}]
c.JupyterHub.load_roles = [
    {{"name": "lti13-selftest-admin", "scopes": ["list:users", "read:users", "admin:auth_state"],
      "services": ["lti13-selftest-admin"]}},
]
''' + HUB_CONFIG.format(
            issuer=edx["issuer"], client_id=edx["client_id"],
            authorize_url=platform_url + "/api/lti_consumer/v1/launch/",
            jwks_endpoint=edx["keyset_url"], crypt_key_hex=os.urandom(32).hex(),
        )
        with open(os.path.join(tmp, "jupyterhub_config.py"), "w") as f:
            f.write(config)
        hub_log = open(os.path.join(tmp, "jupyterhub.log"), "w")
        env = dict(os.environ, PATH=os.path.join(HUB_VENV, "bin") + os.pathsep + os.environ.get("PATH", ""))
        hub = subprocess.Popen(
            [os.path.join(HUB_VENV, "bin/jupyterhub"), "-f", "jupyterhub_config.py"],
            cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=hub_log, stderr=subprocess.STDOUT,
        )
        wait_for(hub_url + "/hub/api/", hub, 90, "JupyterHub")
        t = step(f"JupyterHub started at {hub_url}", t)

        def user(name):
            return http("GET", f"{hub_url}/hub/api/users/{urllib.parse.quote(name, safe='')}", token=ADMIN_TOKEN)

        # 1. a good launch
        sub, email = "edx-anon-7f3a9c", "grace.hopper@example.edu"
        result, rc = run_login(hub_url, platform_url, sub, email, "--name", "Grace Hopper")
        check(result.get("ok") is True and rc == 0, "good launch: logged in")
        check(result.get("hub_user") == email, f"good launch: the Hub user is the email ({result.get('hub_user')})")
        check(result.get("status") == 302, f"good launch: the Hub answered the id_token POST with 302 ({result.get('status')})")
        t = step("good launch", t)
        status, u = user(email)
        check(status == 200, f"GET /hub/api/users/{email} with admin:auth_state ({status})")
        state = (u or {}).get("auth_state") if isinstance(u, dict) else None
        check(isinstance(state, dict), "the user has an auth state")
        state = state or {}
        print("    auth_state: " + json.dumps(state, indent=None, sort_keys=True)[:2000], flush=True)
        check(state.get("sub") == sub, f"auth_state.sub = the launch's sub ({state.get('sub')})")
        check(state.get("iss") == edx["issuer"], f"auth_state.iss = the platform's issuer ({state.get('iss')})")
        aud = state.get("aud")
        check(aud == edx["client_id"] or (isinstance(aud, list) and edx["client_id"] in aud),
              f"auth_state.aud = the client id ({aud})")
        check(state.get("email") == email, f"auth_state.email ({state.get('email')})")
        check(state.get("name") == "Grace Hopper", f"auth_state.name ({state.get('name')})")
        check(state.get(DEPLOYMENT_CLAIM) == edx["deployment_id"],
              f"auth_state deployment_id claim = {edx['deployment_id']!r} ({state.get(DEPLOYMENT_CLAIM)!r})")
        check(state.get(MESSAGE_TYPE_CLAIM) == "LtiResourceLinkRequest", "auth_state message_type LtiResourceLinkRequest")
        check((state.get(RESOURCE_LINK_CLAIM) or {}).get("id") == LABEL,
              f"auth_state resource_link claim ({state.get(RESOURCE_LINK_CLAIM)})")
        ags = state.get(AGS_CLAIM) or {}
        check(ags.get("lineitem") == lineitem, f"auth_state AGS endpoint claim: lineitem = /_setup's ({ags.get('lineitem')})")
        check("https://purl.imsglobal.org/spec/lti-ags/scope/score" in (ags.get("scope") or []),
              f"auth_state AGS endpoint claim: score scope ({ags.get('scope')})")
        check(bool(state.get("nonce")) and bool(state.get("exp")), "auth_state has the nonce and exp")
        t = step("auth state read", t)

        # 2. forged key, 3. expired
        for flag, sub, email, reason in (
            ("--forge-key", "edx-anon-forged", "mallory@example.edu", "Signature verification failed"),
            ("--expired", "edx-anon-expired", "late.student@example.edu", "Signature has expired"),
        ):
            result, rc = run_login(hub_url, platform_url, sub, email, flag)
            check(result.get("ok") is False and rc == 1, f"{flag}: not logged in")
            check(result.get("status") == 400, f"{flag}: the Hub answered the id_token POST with 400 ({result.get('status')})")
            check(reason in (result.get("why") or ""), f"{flag}: the Hub says {reason!r} ({result.get('why')!r})")
            status, _ = user(email)
            check(status == 404, f"{flag}: no Hub user {email} ({status})")
            t = step(f"{flag} launch", t)

        status, users = http("GET", hub_url + "/hub/api/users", token=ADMIN_TOKEN)
        names = sorted(x["name"] for x in users) if status == 200 else users
        check(names == ["grace.hopper@example.edu"], f"the Hub's users: only the good launch's ({names})")
        withstate = []
        for n in names if isinstance(names, list) else []:
            s2, u2 = user(n)
            if s2 == 200 and u2.get("auth_state"):
                withstate.append(n)
        check(withstate == ["grace.hopper@example.edu"], f"auth states: only the good launch's ({withstate})")
        t = step("users checked", t)
    finally:
        t = time.monotonic()
        try:
            with open(proxy_pid_file) as f:
                proxy_pid = int(f.read().strip())
        except (OSError, ValueError):
            proxy_pid = None
        stop(hub, "JupyterHub")  # which stops its proxy too, normally
        try:
            # the proxy this Hub started (its pid file), if it outlived the Hub
            with open(f"/proc/{proxy_pid}/cmdline", "rb") as f:
                if proxy_pid and b"configurable-http-proxy" in f.read():
                    os.kill(proxy_pid, signal.SIGTERM)
                    print(f"  stopped the proxy {proxy_pid}", flush=True)
        except (OSError, TypeError):
            pass
        stop(platform, "platform")
        step("stopped", t)
        if os.environ.get("KEEP") or FAILURES:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - T0:.2f} s; {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
