"""A stand-in for edX's LTI 1.1 outcome service, built on edX's own code.

The request is checked and answered by `lti_consumer.outcomes.OutcomeService.handle_request`
(PyPI lti-consumer-xblock, installed by scripts/setup-edx-verifier.sh), which parses the XML
with edX's `parse_grade_xml_body` and verifies `oauth_body_hash` and the HMAC-SHA1 signature
with edX's `lti_1p1/oauth.py`. Nothing of edX's is copied here: it is imported from the venv
at run time, with the few Django/XBlock names it imports stubbed.

On top of edX, a stricter check with oauthlib's `SignatureOnlyEndpoint` (edX itself ignores
these): the consumer key must be ours, oauth_version 1.0, oauth_body_hash present, the
signature method HMAC-SHA1, the timestamp an integer within 10 minutes, the nonce unused.

usage: python edx_stand_in.py [--port N]     (default $EDX_STAND_IN_PORT or 0 = any free port)
env:   EDX_CONSUMER_KEY, EDX_CONSUMER_SECRET (required)
       EDX_UNKNOWN_USERS  comma-separated users edX "does not know" (answer: User not found.)
Prints `EDX_STAND_IN_PORT=<port>` on stdout once listening on 127.0.0.1.

Routes:
  POST /courses/course-v1:{course}/xblock/block-v1:{course}+type@lti_consumer+block@{block}/handler_noauth/outcome_service_handler
  GET  /_scores   accepted scores, JSON list of {user, score, sourced_id, course_id, block_id,
                  message_id, time}
  GET  /_received how many outcome requests arrived so far (JSON number)
  POST /_mode     body `ok` | `500` | `hang` | `garbage` | `slow-once:SECONDS`: how the outcome
                  route behaves (hang: read the request, never answer; garbage: 200 with
                  non-XML; slow-once: the next request waits SECONDS before edX handles it,
                  later ones are handled at once)
"""

import argparse
import datetime
import importlib.util
import json
import os
import re
import sys
import threading
import types
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


def load_edx():
    """Import edX's outcomes.py and lti_1p1/oauth.py without Django or XBlock."""
    spec = importlib.util.find_spec("lti_consumer")
    if spec is None:
        sys.exit("lti_consumer is not installed: run scripts/setup-edx-verifier.sh")
    root = os.path.dirname(spec.origin)
    # The package's __init__ imports the XBlock class (Django models): skip it, keep submodules.
    pkg = types.ModuleType("lti_consumer")
    pkg.__path__ = [root]
    sys.modules["lti_consumer"] = pkg

    class ResourceLoader:  # xblock.utils.resources.ResourceLoader, as outcomes.py uses it
        def __init__(self, module_name):
            self.module_name = module_name

        def load_unicode(self, path):
            with open(os.path.join(root, path.lstrip("/")), encoding="utf-8") as f:
                return f.read()

    stubs = {
        "django": {},
        "django.conf": {"settings": types.SimpleNamespace(DEBUG=False)},
        "xblock": {},
        "xblock.utils": {},
        "xblock.utils.resources": {"ResourceLoader": ResourceLoader},
    }
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    from lti_consumer import outcomes  # noqa: E402  (edX's code)

    return outcomes, ResourceLoader("lti_consumer.outcomes")


OUTCOMES, LOADER = load_edx()
from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint  # noqa: E402
from oauthlib.oauth1.rfc5849 import errors as oauth_errors  # noqa: E402

KEY = os.environ["EDX_CONSUMER_KEY"]
SECRET = os.environ["EDX_CONSUMER_SECRET"]
UNKNOWN_USERS = {u for u in os.environ.get("EDX_UNKNOWN_USERS", "").split(",") if u}
ROUTE = re.compile(
    r"^/courses/course-v1:(?P<course>[^/]+)/xblock/block-v1:(?P<course2>[^/]+)"
    r"\+type@lti_consumer\+block@(?P<block>[^/]+)/handler_noauth/outcome_service_handler/?$"
)

LOCK = threading.Lock()
SCORES = []
STATE = {"mode": "ok", "slow_once": 0, "received": 0}


class Validator(RequestValidator):
    """Our key and secret; nonce and key formats relaxed from oauthlib's 20-30 alnum."""

    enforce_ssl = False  # the stand-in speaks plain http on 127.0.0.1
    allowed_signature_methods = ("HMAC-SHA1",)
    dummy_client = "dummy-client"
    seen = set()

    def check_client_key(self, client_key):
        return 0 < len(client_key) <= 255 and client_key.isprintable()

    def check_nonce(self, nonce):
        return 8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isprintable()

    def validate_client_key(self, client_key, request):
        return client_key == KEY

    def get_client_secret(self, client_key, request):
        return SECRET if client_key == KEY else "dummy-secret"

    def validate_timestamp_and_nonce(self, client_key, timestamp, nonce, request, **_):
        with LOCK:
            if (client_key, timestamp, nonce) in self.seen:
                return False
            self.seen.add((client_key, timestamp, nonce))
            return True


VALIDATOR = Validator()


def strict_check(uri, headers):
    """None if the OAuth parameters pass oauthlib's endpoint checks, else why not."""
    endpoint = SignatureOnlyEndpoint(VALIDATOR)
    try:
        request = endpoint._create_request(uri, "POST", "", headers)
        endpoint._check_transport_security(request)
        endpoint._check_mandatory_parameters(request)
    except oauth_errors.OAuth1Error as err:
        return err.description
    params = request.oauth_params
    if params.get("oauth_version") != "1.0":
        return "oauth_version 1.0 is missing"
    if "oauth_body_hash" not in params:
        return "oauth_body_hash is missing"
    if not VALIDATOR.validate_timestamp_and_nonce(
        request.client_key, request.timestamp, request.nonce, request
    ):
        return "nonce already used"
    if not VALIDATOR.validate_client_key(request.client_key, request):
        return "unknown consumer key"
    if not endpoint._check_signature(request):
        return "signature does not verify (oauthlib SignatureOnlyEndpoint)"
    return None


class Block:
    """The parts of edX's LtiConsumerXBlock that OutcomeService uses."""

    accept_grades_past_due = True

    def __init__(self, service_url):
        self.outcome_service_url = service_url
        self.stored = None

    def is_past_due(self):
        return False

    def get_lti_consumer(self):
        return types.SimpleNamespace(oauth_secret=SECRET)

    def get_lti_1p1_user_from_user_id(self, user_id):
        return None if user_id in UNKNOWN_USERS else user_id

    def set_user_module_score(self, user, score, max_score, comment=""):
        self.stored = (user, score)

    def max_score(self):
        return 1.0


class WebobRequest:
    """The parts of a webob request that OutcomeService and oauth.py read."""

    def __init__(self, handler, body):
        self.body = body
        self.method = "POST"
        self.headers = handler.headers  # case-insensitive, as webob's are
        self.content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        host = handler.headers.get("Host", "127.0.0.1")
        self.url = f"http://{host}{handler.path}"


def failure(message_id, description):
    template = LOADER.load_unicode("/templates/xml/outcome_service_response.xml")
    return template.format(
        imsx_codeMajor="failure",
        imsx_description=escape(description),
        imsx_messageIdentifier=escape(message_id),
        response="",
    )


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/_scores":
            with LOCK:
                self.answer(200, json.dumps(SCORES), "application/json")
        elif self.path == "/_received":
            with LOCK:
                self.answer(200, json.dumps(STATE["received"]), "application/json")
        else:
            self.answer(404, "not found", "text/plain")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_mode":
            mode = body.decode().strip()
            slow = re.fullmatch(r"slow-once:(\d+(?:\.\d+)?)", mode)
            if slow:
                STATE["slow_once"] = float(slow.group(1))
                return self.answer(200, mode, "text/plain")
            if mode not in ("ok", "500", "hang", "garbage"):
                return self.answer(400, f"unknown mode {mode!r}", "text/plain")
            STATE["mode"] = mode
            return self.answer(200, mode, "text/plain")
        route = ROUTE.match(urllib.parse.unquote(self.path))
        if not route or route["course"] != route["course2"]:
            return self.answer(404, "no such handler", "text/html")
        with LOCK:
            STATE["received"] += 1
            delay, STATE["slow_once"] = STATE["slow_once"], 0
        if delay:
            threading.Event().wait(delay)
        mode = STATE["mode"]
        if mode == "hang":
            threading.Event().wait()
        if mode == "500":
            return self.answer(500, "<h1>Server Error (500)</h1>", "text/html")
        if mode == "garbage":
            return self.answer(200, "<html>Service unavailable</html>", "text/html")
        self.answer(200, self.outcome(route, body), "application/xml")

    def outcome(self, route, body):
        port = self.server.server_address[1]
        service_url = f"http://127.0.0.1:{port}{self.path}"
        block = Block(service_url)
        answer = OUTCOMES.OutcomeService(block).handle_request(WebobRequest(self, body))
        if block.stored is None:
            return answer  # edX refused: its own answer, its own description
        uri = urllib.parse.unquote(service_url)
        problem = strict_check(uri, dict(self.headers.items()))
        message_id, sourced_id, _, _ = OUTCOMES.parse_grade_xml_body(body.decode("utf-8"))
        if problem:
            return failure(message_id, "OAuth verification error: " + problem)
        user, score = block.stored
        with LOCK:
            SCORES.append({
                "user": user,
                "score": score,
                "sourced_id": sourced_id,
                "course_id": route["course"],
                "block_id": route["block"],
                "message_id": message_id,
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            })
        return answer

    def answer(self, status, text, content_type):
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # no headers are logged, only the request line
        sys.stderr.write("edx-stand-in: " + (fmt % args) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("EDX_STAND_IN_PORT", 0)))
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"EDX_STAND_IN_PORT={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
