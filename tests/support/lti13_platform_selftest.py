"""Self-test of tests/support/lti13_platform.py, from a tool's side (not part of CI).

A pure-Python LTI 1.3 tool (PyJWT + cryptography): it generates an RSA key, serves its JWKS on
a small local HTTP server, starts the platform (edX's peer and the strict lti1p3platform peer),
gets access tokens with an RS256 client assertion, posts AGS scores, checks the control routes,
and restarts the platform on the same database to see the scores kept.

usage: $LTI13_VENV/bin/python tests/support/lti13_platform_selftest.py
       (the venv of scripts/setup-lti13-platform.sh: it has PyJWT and cryptography)
Exit status 0 when every check passed; prints the time each step took.
"""

import concurrent.futures
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
KID = "otter-selftest-key-1"
FAILURES = []
T0 = time.monotonic()


def step(name, started):
    print(f"  [{time.monotonic() - T0:6.2f} s] {name}: {time.monotonic() - started:.2f} s", flush=True)


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def http(method, url, body=None, headers=None):
    """(status, headers, parsed JSON or text) without raising on 4xx/5xx."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode("utf-8", "replace")


def post_json(url, obj):
    return http("POST", url, json.dumps(obj), {"Content-Type": "application/json"})


class Tool:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
        self.jwks = json.dumps({"keys": [jwk]}).encode()
        self.jwks_hits = 0
        tool = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                tool.jwks_hits += 1
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(tool.jwks)))
                self.end_headers()
                self.wfile.write(tool.jwks)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def assertion(self, peer, kid=True, **override):
        now = int(time.time())
        claims = {
            "iss": peer["client_id"], "sub": peer["client_id"], "aud": peer["token_url"],
            "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
        }
        claims.update(override)
        headers = {"kid": KID} if kid else None
        return jwt.encode(claims, self.key, algorithm="RS256", headers=headers)

    def token(self, peer, kid=True, scope=SCORE_SCOPE):
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(peer, kid=kid),
            "scope": scope,
        })
        return http("POST", peer["token_url"], form, {"Content-Type": "application/x-www-form-urlencoded"})


def score(user, given, ts, maximum=10):
    return {
        "userId": user, "scoreGiven": given, "scoreMaximum": maximum, "comment": "selftest",
        "activityProgress": "Completed", "gradingProgress": "FullyGraded",
        "timestamp": ts.isoformat(timespec="milliseconds"),
    }


def post_score(lineitem, token, body):
    return http("POST", lineitem + "/scores", json.dumps(body),
                {"Content-Type": SCORE_TYPE, "Authorization": f"Bearer {token}"})


class Platform:
    def __init__(self, db, jwks_url, port=0):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "lti13_platform.py"), "--port", str(port),
             "--db", db, "--tool-keyset-url", jwks_url],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("LTI13_PLATFORM_PORT="):
            self.proc.kill()
            sys.exit(f"platform did not start (first line {line!r}, exit {self.proc.wait()})")
        PLATFORMS.append(self)
        self.port = int(line.split("=", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "killed after 10 s"


PLATFORMS = []


def main():
    try:
        return run()
    finally:
        for p in PLATFORMS:  # a check that raised must not leave a platform running
            if p.proc.poll() is None:
                p.proc.kill()


def run():
    tmp = tempfile.mkdtemp(prefix="lti13-selftest-")
    db = os.path.join(tmp, "platform.sqlite")
    tool = Tool()

    t = time.monotonic()
    platform = Platform(db, tool.jwks_url)
    step("start platform (fresh db: migrations)", t)
    base = platform.base

    t = time.monotonic()
    status, _, setup = post_json(base + "/_setup", {"lineitems": ["hw1", "hw2"], "score_maximum": 10})
    check(status == 200, f"/_setup answers 200 ({status})")
    status2, _, setup2 = post_json(base + "/_setup", {"lineitems": ["hw1", "hw2"], "score_maximum": 10})
    check(setup2 == setup, "/_setup again: the same answer (idempotent)")
    step("/_setup twice", t)
    edx, strict = setup["edx"], setup["strict"]
    print(json.dumps(setup, indent=1))

    # Tokens
    t = time.monotonic()
    s, _, tok = tool.token(edx)
    check(s == 200 and tok.get("token_type") == "bearer" and tok.get("scope") == SCORE_SCOPE,
          f"edX token with kid: 200 bearer, scope {SCORE_SCOPE} ({s} {tok})")
    edx_token = tok.get("access_token")
    s, _, tok = tool.token(strict)
    check(s == 200 and tok.get("scope") == SCORE_SCOPE, f"strict token with kid: 200 ({s} {tok})")
    strict_token = tok.get("access_token")
    s, _, tok = tool.token(strict, kid=False)
    check(s == 400 and tok.get("error") == "invalid_client", f"strict token WITHOUT kid: 400 invalid_client ({s} {tok})")
    s, _, tok = tool.token(edx, kid=False)
    check(s == 200, f"edX token without kid: 200 (edX does not need kid) ({s})")
    step("4 token requests", t)

    # Scores
    t = time.monotonic()
    now = datetime.datetime.now(datetime.timezone.utc)
    s, _, body = post_score(edx["lineitems"]["hw1"], edx_token, score("learner-1", 7, now))
    check(s == 201, f"edX score: 201 ({s} {body})")
    s, _, body = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 7, now))
    check(s == 201, f"strict score: 201 created ({s} {body})")
    s, _, body = post_score(edx["lineitems"]["hw1"], edx_token, score("learner-1", 8, now))
    check(s == 400 and "already exists" in json.dumps(body), f"edX same timestamp: 400 'already exists' ({s} {body})")
    s, _, body = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 8, now))
    check(s == 409, f"strict same timestamp: 409 oldtimestamp ({s} {body})")
    s, _, body = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 8, now - datetime.timedelta(seconds=5)))
    check(s == 409, f"strict older timestamp: 409 ({s} {body})")
    later = now + datetime.timedelta(seconds=1)
    s, _, _ = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 9, later))
    check(s == 200, f"strict later timestamp: 200 success ({s})")
    s, _, body = post_score(strict["lineitems"]["hw1"], edx_token, score("learner-2", 1, now))
    check(s == 401, f"strict with edX's token: 401 ({s} {body})")
    s, _, body = post_score(edx["lineitems"]["hw1"], strict_token, score("learner-2", 1, now))
    check(s == 403, f"edX with the strict peer's token: 403 (edX answers 403, not 401) ({s})")
    s, _, body = http("POST", strict["lineitems"]["hw1"] + "/scores", json.dumps(score("learner-2", 1, now)),
                      {"Content-Type": "application/json", "Authorization": f"Bearer {strict_token}"})
    check(s == 415, f"strict with Content-Type application/json: 415 ({s} {body})")
    step("9 score requests", t)

    t = time.monotonic()
    s, _, rows = http("GET", base + "/_scores")
    mine = {(r["peer"], r["lineitem"], r["user_id"]): r for r in rows}
    e = mine.get(("edx", edx["lineitems"]["hw1"], "learner-1"))
    st = mine.get(("strict", strict["lineitems"]["hw1"], "learner-1"))
    check(len(rows) == 2 and e and e["score_given"] == 7 and e["score_maximum"] == 10
          and e["grading_progress"] == "FullyGraded" and e["activity_progress"] == "Completed",
          f"/_scores: edX row 7/10 ({e})")
    check(st and st["score_given"] == 9, f"/_scores: strict row 9/10 ({st})")
    s, _, tok = tool.token(edx, scope="https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly")
    s, _, results = http("GET", edx["lineitems"]["hw1"] + "/results",
                         headers={"Authorization": f"Bearer {tok.get('access_token')}"})
    check(s == 200 and isinstance(results, list) and results and results[0].get("resultScore") == 7.0,
          f"edX results GET (result.readonly token): 200, resultScore 7 ({s} {results})")
    step("/_scores, edX results", t)

    # Failure modes
    t = time.monotonic()
    s, _, m = http("POST", base + "/_mode", "500-times:1")
    check(s == 200 and m == {"mode": "500-times:1"}, f"/_mode 500-times:1 ({s} {m})")
    ts2 = now + datetime.timedelta(seconds=2)
    s, _, _ = post_score(edx["lineitems"]["hw1"], edx_token, score("learner-1", 10, ts2))
    check(s == 500, f"edX after 500-times:1: 500 ({s})")
    s, _, body = post_score(edx["lineitems"]["hw1"], edx_token, score("learner-1", 10, ts2))
    check(s == 201, f"edX retry with the same timestamp: 201 (nothing was stored by the 500) ({s} {body})")
    http("POST", base + "/_mode", "429-once")
    s, h, _ = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 10, ts2))
    check(s == 429 and h.get("Retry-After") == "1", f"strict after 429-once: 429 Retry-After 1 ({s} {h.get('Retry-After')})")
    http("POST", base + "/_mode", "401-once")
    s, _, _ = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 10, ts2))
    check(s == 401, f"strict after 401-once: 401 ({s})")
    s, _, _ = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 10, ts2))
    check(s == 200, f"strict next: 200 ({s})")
    http("POST", base + "/_mode", "500")
    s1 = post_score(edx["lineitems"]["hw2"], edx_token, score("learner-1", 1, now))[0]
    s2 = post_score(strict["lineitems"]["hw2"], strict_token, score("learner-1", 1, now))[0]
    check(s1 == 500 and s2 == 500, f"mode 500: both peers 500 ({s1} {s2})")
    s, _, m = http("POST", base + "/_mode", "ok")
    check(m == {"mode": "ok"}, f"/_mode ok ({m})")
    s, _, m = http("POST", base + "/_mode", "sometimes")
    check(s == 400, f"/_mode with an unknown mode: 400 ({s})")
    step("failure modes", t)

    # Concurrent posts (SQLite under threads)
    t = time.monotonic()
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for i in range(12):
            jobs.append(pool.submit(post_score, edx["lineitems"]["hw2"], edx_token, score(f"c{i}", i % 11, now)))
            jobs.append(pool.submit(post_score, strict["lineitems"]["hw2"], strict_token, score(f"c{i}", i % 11, now)))
        codes = sorted(j.result()[0] for j in jobs)
    check(codes == [201] * 24, f"24 concurrent score posts on both peers: all 201 ({codes})")
    step("24 concurrent score posts", t)

    # Launch
    t = time.monotonic()
    redirect = "http://127.0.0.1:8000/hub/lti13/oauth_callback"
    oidc = "http://127.0.0.1:8000/hub/lti13/oauth_login"
    s, _, launch = post_json(base + "/_launch", {"sub": "learner-1", "label": "hw1", "nonce": "n-123",
                                                 "redirect_uri": redirect, "state": "st-1", "oidc_url": oidc})
    check(s == 200 and "id_token" in launch and launch.get("state") == "st-1", f"/_launch: 200 with an id_token ({s})")
    login = urllib.parse.urlsplit(launch.get("login_url", ""))
    q = dict(urllib.parse.parse_qsl(login.query))
    check(login._replace(query="").geturl() == oidc and q.get("iss") == edx["issuer"]
          and q.get("client_id") == edx["client_id"] and q.get("login_hint") == "learner-1"
          and q.get("target_link_uri") == redirect and q.get("lti_message_hint"),
          f"/_launch login_url: edX's OIDC login request ({launch.get('login_url')})")
    try:
        signing = jwt.PyJWKClient(edx["keyset_url"]).get_signing_key_from_jwt(launch["id_token"])
        claims = jwt.decode(launch["id_token"], signing.key, algorithms=["RS256"], audience=edx["client_id"],
                            issuer=edx["issuer"])
        lti = "https://purl.imsglobal.org/spec/lti/claim/"
        ags = claims.get("https://purl.imsglobal.org/spec/lti-ags/claim/endpoint", {})
        check(jwt.get_unverified_header(launch["id_token"]).get("kid") is not None, "launch: kid in the header")
        check(claims["sub"] == "learner-1" and claims["nonce"] == "n-123"
              and claims[lti + "message_type"] == "LtiResourceLinkRequest" and claims[lti + "version"] == "1.3.0"
              and claims[lti + "deployment_id"] == edx["deployment_id"]
              and claims[lti + "target_link_uri"] == redirect
              and claims[lti + "resource_link"]["id"] == "hw1"
              and claims[lti + "context"]["id"] and claims["aud"] == edx["client_id"]
              and any(r.endswith("#Learner") for r in claims[lti + "roles"])
              and ags.get("lineitem") == edx["lineitems"]["hw1"] and SCORE_SCOPE in ags.get("scope", []),
              "launch: verified with the edX key set URL; claims as expected")
        print(json.dumps(claims, indent=1))
    except Exception as e:  # noqa: BLE001
        check(False, f"launch verification: {e!r}")
    step("/_launch + verify", t)

    s, _, stats = http("GET", base + "/_stats")
    print(json.dumps(stats))
    check(stats["token_requests"] == {"edx": 3, "strict": 2}, f"/_stats token_requests ({stats['token_requests']})")
    check(stats["score_requests"] == {"edx": 18, "strict": 22}, f"/_stats score_requests ({stats['score_requests']})")
    check(stats["score_answers"].get("500") == 3 and stats["score_answers"].get("201") == 27,
          f"/_stats score_answers ({stats['score_answers']})")

    # Restart on the same db and port
    t = time.monotonic()
    before = http("GET", base + "/_scores")[2]
    rc = platform.stop()
    check(rc == 0, f"SIGTERM: exit status 0 ({rc})")
    step("stop (SIGTERM)", t)
    t = time.monotonic()
    platform = Platform(db, tool.jwks_url, port=platform.port)
    step("restart on the same db and port", t)
    after = http("GET", base + "/_scores")[2]
    check(after == before and len(after) == 26, f"after restart: the same {len(after)} scores")
    s, _, setup3 = post_json(base + "/_setup", {"lineitems": ["hw1", "hw2"], "score_maximum": 10})
    check(setup3 == setup, "after restart: /_setup gives the same URLs and client ids")
    s, _, _ = post_score(edx["lineitems"]["hw1"], edx_token, score("learner-1", 6, now + datetime.timedelta(seconds=3)))
    check(s == 201, f"after restart: the old edX token still works (same key) ({s})")
    s, _, _ = post_score(strict["lineitems"]["hw1"], strict_token, score("learner-1", 6, now + datetime.timedelta(seconds=3)))
    check(s == 200, f"after restart: the old strict token still works (same key) ({s})")
    before = http("GET", base + "/_scores")[2]
    platform.proc.kill()  # SIGKILL: committed scores must survive (SQLite WAL) as well
    platform.proc.wait()
    t = time.monotonic()
    platform = Platform(db, tool.jwks_url, port=platform.port)
    step("restart after SIGKILL", t)
    after = http("GET", base + "/_scores")[2]
    check(after == before, f"after SIGKILL and restart: the same {len(after)} scores")
    rc = platform.stop()
    check(rc == 0, f"SIGTERM again: exit status 0 ({rc})")
    print(f"tool key set fetched {tool.jwks_hits} times")
    print(f"total {time.monotonic() - T0:.2f} s; {len(FAILURES)} failed")
    if FAILURES:
        print(f"platform database kept in {tmp}")
        return 1
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
