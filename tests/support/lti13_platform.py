"""An LTI 1.3 Advantage platform for the tests, built on two real platforms' code.

What is edX's (PyPI lti-consumer-xblock 11.4.4, installed by scripts/setup-lti13-platform.sh
and imported from that venv at run time; nothing of it is copied here):
  * every route under /api/: edX's own URL module `lti_consumer.plugin.urls`, mounted under
    `api/` as the LMS mounts it, so the token endpoint (`access_token_endpoint`, which checks
    the tool's client assertion against the tool's key set URL, fetched on every request), the
    platform key set and the AGS line item / scores / results viewset (DRF, with edX's
    `Lti1p3ApiAuthentication`, `LtiAgsPermissions` and `LtiAgsScoreSerializer`) run as shipped;
  * its models (`Lti1p3Passport`, `LtiConfiguration`, `LtiAgsLineItem`, `LtiAgsScore`) and
    migrations, in the SQLite file given by --db;
  * the launch of /_launch: `LtiConfiguration.get_lti_consumer()` (edX's
    `LtiAdvantageConsumer`, which adds the AGS endpoint claim for the configuration's line item),
    its `prepare_preflight_url` (the OIDC login URL; the launch data cached), `set_user_data`
    (sub, roles, and the PII claims `name` and `email` when given) and
    `generate_launch_request`, the id_token signed with the passport's platform key
    (`PlatformKeyHandler`, kid in the header);
  * the browser launch (the OIDC third-party login, as tests/support/lti13_hub_login.py drives
    it against JupyterHub's LTI13Authenticator): /_preflight prepares it as edX's XBlock does
    (`prepare_preflight_url`: launch data cached under the `lti_message_hint`, the login URL
    built), and edX's `launch_gate_endpoint` (/api/lti_consumer/v1/launch/, plugin/urls.py) is
    the OIDC authorization endpoint: it takes the tool's authentication request (GET or POST:
    client_id, redirect_uri, login_hint, lti_message_hint, nonce, state, ...), finds the launch
    data by `lti_message_hint`, checks (`_validate_preflight_response`) nonce, state, client_id
    and that redirect_uri is registered on the configuration, and answers 200 with its
    auto-submitting form (lti_1p3_launch.html: POST id_token and state to redirect_uri), or
    its error page (lti_launch_error.html, 400).

What is lti1p3platform's (PyPI lti1p3platform 0.1.8, same venv), the stricter peer under /strict/:
  * `LTI1P3PlatformConfAbstract.get_access_token` checks the client assertion: it needs `kid`
    in the header and a key with that kid (and alg) in the tool's key set;
  * `AssignmentsGradesService.handle_update_score` checks the bearer token
    (`validate_token`: signature, issuer, expiry, scope) and maps the status our `update_score`
    returns to HTTP (created 201, success 200, oldtimestamp 409, ...);
  * `DjangoRequest` / `wrap_json_resp`, its own Django adapters.

What is ours:
  * the Django project around edX's app (settings, a SQLite database, migrations run at start),
    served by wsgiref's server with one thread per request on 127.0.0.1 (no runserver);
  * grade publishing: edX publishes a FullyGraded score into edx-platform's gradebook
    (`lti_consumer.plugin.compat.load_block_as_user`, `get_user_from_external_user_id`), which
    cannot run outside edX. Each label gets a configuration with a block location of our own
    (edX keys configurations by location) and a line item whose `resource_link_id` is NULL, not
    that location: edX then stores the score and publishes nothing, as it does for a line item
    outside the configuration's block (signals.publish_grade_on_score_update), so edX's score
    code runs as shipped and no edx-platform call is made or stubbed;
  * the strict peer's storage (`update_score`: one row per line item and userId, a timestamp
    not later than the stored one answers `oldtimestamp`), its score validation (the AGS score
    media type, userId, an ISO 8601 timestamp, lti1p3platform's progress enums, scoreGiven needs
    scoreMaximum > 0: lti1p3platform validates nothing there, "TODO: validate score"), its HTTP
    error mapping (a token error that lti1p3platform raises instead of answering becomes 401;
    token endpoint errors become RFC 6749 400s), and the score scope as the only scope its
    score route accepts (lti1p3platform alone accepts any AGS scope there);
  * the control routes below, and failure injection in front of both peers' score routes;
  * a test knob in front of edX's launch gate: `otter_expired=1` added to the authentication
    request makes edX's key handler sign at a clock two hours behind (iat 2 h ago, exp =
    iat + 3600 = 1 h ago), in that request's thread only; without it the gate runs as shipped;
  * edX's `lti_sanitize` template tags (bleach, not installed; only the deep-linking content
    template loads them) registered as an empty tag library, so Django can render edX's
    launch gate templates.

usage: python lti13_platform.py --db FILE --tool-keyset-url URL [--port N]
       --port 0 (the default) = any free port. The SQLite file keeps everything (edX's keys,
       client ids, line items, scores; the strict peer's key and scores): a restart on the same
       file and the same port serves the same URLs, keys and scores. Prints
       `LTI13_PLATFORM_PORT=<port>` on stdout once listening. SIGTERM/SIGINT: clean exit.
       Logs (edX's warnings, tracebacks) go to stderr; LTI13_PLATFORM_LOG=1 adds each request.

Control routes (JSON):
  POST /_setup   {"lineitems": ["label", ...], "score_maximum": 10}: creates (idempotently:
                 the same labels give the same rows) edX's passport (tool key set URL =
                 --tool-keyset-url), one LtiConfiguration (lti_1p3, CONFIG_ON_DB, AGS
                 declarative) and line item per label, and a strict-peer line item per label.
                 Answers {"edx": {issuer, client_id, deployment_id, token_url, keyset_url,
                 lineitems: {label: url}}, "strict": {same keys}}; scores URL = line item + /scores
  GET  /_scores  every stored score of both peers: [{peer, lineitem, user_id, score_given,
                 score_maximum, timestamp, activity_progress, grading_progress, comment}]
  GET  /_stats   {"token_requests": {"edx": n, "strict": n}, "score_requests": {...},
                 "score_answers": {"201": n, ...}} (requests that reached those routes)
  POST /_mode    body `ok` | `500` | `500-times:N` | `429-once` | `401-once`: how the score
                 routes of both peers answer (500: every request, nothing stored; 500-times:N
                 the next N; 429-once: the next one, with Retry-After: 1; 401-once: the next
                 one, as when a token was revoked). Answers the mode now in force.
  POST /_launch  {"sub", "label", "nonce", "redirect_uri", optional "state", "target_link_uri"
                 (default redirect_uri), "oidc_url" (the tool's login initiation URL, default
                 redirect_uri), "role" (edX role, default student), "email", "name" (the
                 student's email and full name: edX's PII claims)}: {"id_token", "state",
                 "login_url"}: an LtiResourceLinkRequest for that label's edX configuration
                 signed by the passport key (verify with the edX keyset_url of /_setup), and
                 the OIDC login URL edX would send the browser to (iss, login_hint,
                 target_link_uri, lti_message_hint, client_id, lti_deployment_id). The tool's
                 nonce, state and redirect_uri can be the ones of a tool's real authentication
                 request (e.g. JupyterHub's redirect from /hub/lti13/oauth_login).
  POST /_preflight  {"sub", "label", "oidc_url", "redirect_uri", "target_link_uri", optional
                 "role", "email", "name"}: registers the tool's URLs on the label's edX
                 configuration (login initiation URL, redirect URI, launch URL), caches the
                 launch data and answers {"login_url", "authorize_url"}: the URL edX sends the
                 browser to (oidc_url?iss&client_id&lti_deployment_id&target_link_uri
                 &login_hint=sub&lti_message_hint) and edX's launch gate, the authorization
                 endpoint the tool redirects the browser to (with `otter_expired=1` added: an
                 expired id_token, see above). The cached launch data live 600 s (edX's).

Launch through a real JupyterHub: lti13_hub_login.py (its HUB_CONFIG: authorize_url = the
launch gate, jwks_endpoint = /_setup's edx keyset_url) and lti13_chain_selftest.py.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import signal
import socketserver
import sys
import threading
import types
import urllib.parse
import uuid
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
# lms/envs/common.py's USAGE_ID_PATTERN: edX's URL module needs it.
USAGE_ID_PATTERN = r"(?P<usage_id>(?:i4x://?[^/]+/[^/]+/[^/]+/[^@]+(?:@[^/]+)?)|(?:[^/]+))"
PASSPORT_NAME = "otter-lti13-platform"
COURSE = "course-v1:OtterX+LTI13+test"
COURSE_BLOCK = "block-v1:OtterX+LTI13+test+type@lti_consumer+block@"
EDX_SCORES = re.compile(r"^/api/lti_consumer/v1/lti/[-\w]+/lti-ags/[^/]+/scores/?$")
EDX_TOKEN = re.compile(r"^/api/lti_consumer/v1/token/")
STRICT_SCORES = re.compile(r"^/strict/lineitems/[^/]+/scores/?$")
STRICT_TOKEN = re.compile(r"^/strict/token/?$")
# edX's launch gate (plugin/urls.py `lti_consumer.launch_gate`): the OIDC authorization endpoint
LAUNCH_GATE = "/api/lti_consumer/v1/launch/"


class Control:
    """Counters and the failure mode of the score routes (shared by all request threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "ok"  # ok | 500 | 500-times | 429-once | 401-once
        self.remaining = 0
        self.tokens = {"edx": 0, "strict": 0}
        self.scores = {"edx": 0, "strict": 0}
        self.answers = {}

    def set_mode(self, text):
        text = text.strip()
        with self.lock:
            if text in ("ok", "500", "429-once", "401-once"):
                self.mode, self.remaining = text, 0
            elif re.fullmatch(r"500-times:\d+", text):
                self.mode, self.remaining = "500-times", int(text.split(":")[1])
                if self.remaining == 0:
                    self.mode = "ok"
            else:
                return None
            return self.describe()

    def describe(self):
        return f"500-times:{self.remaining}" if self.mode == "500-times" else self.mode

    def injected(self):
        """The failure the next score request gets, if any (consumes one-shot modes)."""
        with self.lock:
            mode = self.mode
            if mode == "500":
                return 500
            if mode == "500-times":
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode = "ok"
                return 500
            if mode in ("429-once", "401-once"):
                self.mode = "ok"
                return int(mode[:3])
            return None

    def answered(self, status):
        with self.lock:
            self.answers[status] = self.answers.get(status, 0) + 1

    def stats(self):
        with self.lock:
            return {
                "token_requests": dict(self.tokens),
                "score_requests": dict(self.scores),
                "score_answers": dict(self.answers),
                "mode": self.describe(),
            }


CONTROL = Control()


def import_edx_app_without_xblock():
    """Make `lti_consumer` importable without its package __init__, which only imports the
    XBlock class for an XBlock runtime (XBlock, web-fragments, mako, lxml, bleach, ...): the
    platform views, models and migrations are submodules and load as shipped from the
    installed package. setup-lti13-platform.sh installs only what those submodules import."""
    import importlib.util

    spec = importlib.util.find_spec("lti_consumer")
    if spec is None:
        sys.exit("lti_consumer is not installed: run scripts/setup-lti13-platform.sh")
    pkg = types.ModuleType("lti_consumer")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__file__ = spec.origin
    sys.modules["lti_consumer"] = pkg


def configure_django(db, base):
    import_edx_app_without_xblock()
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="otter-lti13-test-platform",  # Django needs one; nothing here is signed with it
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "django_filters",
            "config_models",
            "lti_consumer.apps.LTIConsumerApp",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": db,
                # As in the LMS: each request is one transaction (a failing request stores nothing).
                "ATOMIC_REQUESTS": True,
                # One writer at a time without "database is locked": writers take the lock at BEGIN
                # and wait for it up to 30 s.
                "OPTIONS": {
                    "timeout": 30,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL;",
                },
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        ROOT_URLCONF="lti13_platform_urls",
        MIDDLEWARE=[],
        USE_TZ=True,
        TIME_ZONE="UTC",
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        # edX's launch gate (the OIDC authorization endpoint) renders its own templates
        # (lti_1p3_launch.html: the auto-submitting form; lti_launch_error.html).
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
        LTI_API_BASE=base,
        LMS_ROOT_URL=base,
        PLATFORM_NAME="Otter LTI 1.3 test platform",
        OPENEDX_TELEMETRY=[],  # edx_django_utils: no New Relic here
        USAGE_ID_PATTERN=USAGE_ID_PATTERN,
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": sys.stderr}},
            "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
        },
    )
    # edX's lti_sanitize template tags (used only by the deep-linking content template
    # lti-dl/render_html.html) import bleach, which is not installed; Django imports every
    # app's template tag modules when the first template renders (edX's launch gate page), so
    # that one module is registered as an empty tag library. Nothing renders with it here.
    from django import template

    sanitize = types.ModuleType("lti_consumer.templatetags.lti_sanitize")
    sanitize.register = template.Library()
    sys.modules[sanitize.__name__] = sanitize
    import django

    django.setup()


def build(args, base):
    """Everything that needs Django set up: the strict peer, our views, the URL module."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.http import HttpResponse, JsonResponse
    from django.urls import include, path, re_path
    from django.views.decorators.csrf import csrf_exempt

    # edX's code
    from lti_consumer.models import Lti1p3Passport, LtiAgsLineItem, LtiAgsScore, LtiConfiguration
    from lti_consumer.data import Lti1p3LaunchData
    from lti_consumer.lti_1p3 import key_handlers as edx_key_handlers
    from lti_consumer.plugin.views import launch_gate_endpoint
    from lti_consumer.utils import get_lti_1p3_context_types_claim, get_lti_ags_lineitems_url
    from opaque_keys.edx.keys import UsageKey

    # lti1p3platform's code
    from lti1p3platform.exceptions import (
        InvalidKeySetUrl,
        LineItemNotFoundException,
        LtiException,
        LtiServiceException,
        MissingRequiredClaim,
        UnsupportedGrantType,
    )
    from lti1p3platform.framework.django.request import DjangoRequest
    from lti1p3platform.framework.django.response import wrap_json_resp
    from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
    from lti1p3platform.registration import Registration
    from lti1p3platform.response import Response as LtiResponse
    from lti1p3platform.score import ActivityProgress, GradeProgress, UpdateScoreStatus
    from lti1p3platform.service_connector import AssignmentsGradesService

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as c:
        c.execute("CREATE TABLE IF NOT EXISTS strict_config (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute(
            "CREATE TABLE IF NOT EXISTS strict_lineitem (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " label TEXT UNIQUE NOT NULL, score_maximum REAL NOT NULL)"
        )
        c.execute(
            "CREATE TABLE IF NOT EXISTS strict_score (lineitem_id INTEGER NOT NULL, user_id TEXT NOT NULL,"
            " timestamp TEXT NOT NULL, score_given REAL, score_maximum REAL, comment TEXT,"
            " activity_progress TEXT NOT NULL, grading_progress TEXT NOT NULL,"
            " PRIMARY KEY (lineitem_id, user_id))"
        )

    def strict_config(name, make):
        with transaction.atomic(), connection.cursor() as c:
            c.execute("SELECT value FROM strict_config WHERE name = %s", [name])
            row = c.fetchone()
            if row:
                return row[0]
            value = make()
            c.execute("INSERT INTO strict_config (name, value) VALUES (%s, %s)", [name, value])
            return value

    def new_private_key():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    strict_key = strict_config("private_key", new_private_key)
    strict_public = (
        serialization.load_pem_private_key(strict_key.encode(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    strict_client_id = strict_config("client_id", lambda: str(uuid.uuid4()))
    strict_iss = base + "/strict"
    strict_deployment = "strict-1"

    # The edX passport follows --tool-keyset-url (the tool's key set may move between runs).
    Lti1p3Passport.objects.filter(name=PASSPORT_NAME).update(lti_1p3_tool_keyset_url=args.tool_keyset_url)

    class StrictPlatform(LTI1P3PlatformConfAbstract):
        def init_platform_config(self, **kwargs):
            pass

        def get_registration_by_params(self, **kwargs):
            return (
                Registration()
                .set_iss(strict_iss)
                .set_client_id(strict_client_id)
                .set_deployment_id(strict_deployment)
                .set_platform_private_key(strict_key)
                .set_platform_public_key(strict_public)
                .set_tool_key_set_url(args.tool_keyset_url)
            )

    def strict_platform():
        platform = StrictPlatform()
        platform.get_registration()
        return platform

    def parse_time(value):
        if not isinstance(value, str):
            raise ValueError("not a string")
        t = datetime.datetime.fromisoformat(value)
        if t.tzinfo is None:
            raise ValueError("no time zone")
        return t

    class StrictScores(AssignmentsGradesService):
        """lti1p3platform's AGS service; the storage and the score checks are ours."""

        @property
        def allowed_scopes(self):
            return [SCORE_SCOPE]

        def update_score(self, line_item_id, score):
            if self.request.content_type != SCORE_MEDIA_TYPE:
                raise LtiServiceException(f"Content-Type must be {SCORE_MEDIA_TYPE}", 415)
            if not isinstance(score, dict):
                raise LtiServiceException("the body must be a JSON object", 400)
            user_id = score.get("userId")
            if not isinstance(user_id, str) or not user_id:
                raise LtiServiceException("userId must be a non-empty string", 400)
            try:
                timestamp = parse_time(score.get("timestamp"))
            except ValueError:
                raise LtiServiceException("timestamp must be ISO 8601 with a time zone", 400)
            try:
                activity = ActivityProgress(score.get("activityProgress")).value
                grading = GradeProgress(score.get("gradingProgress")).value
            except ValueError:
                raise LtiServiceException("activityProgress or gradingProgress not in the AGS enum", 400)
            given, maximum = score.get("scoreGiven"), score.get("scoreMaximum")
            for name, value in (("scoreGiven", given), ("scoreMaximum", maximum)):
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                    raise LtiServiceException(f"{name} must be a number >= 0", 400)
            if given is not None and not maximum:
                raise LtiServiceException("scoreMaximum must be > 0 when scoreGiven is present", 400)
            comment = score.get("comment")
            with connection.cursor() as c:
                c.execute("SELECT 1 FROM strict_lineitem WHERE id = %s", [line_item_id])
                if not c.fetchone():
                    raise LineItemNotFoundException()
                c.execute(
                    "SELECT timestamp FROM strict_score WHERE lineitem_id = %s AND user_id = %s",
                    [line_item_id, user_id],
                )
                row = c.fetchone()
                if row and parse_time(row[0]) >= timestamp:
                    return UpdateScoreStatus.OLD_TIMESTAMP
                values = [timestamp.isoformat(), given, maximum, comment, activity, grading, line_item_id, user_id]
                if row:
                    c.execute(
                        "UPDATE strict_score SET timestamp = %s, score_given = %s, score_maximum = %s,"
                        " comment = %s, activity_progress = %s, grading_progress = %s"
                        " WHERE lineitem_id = %s AND user_id = %s",
                        values,
                    )
                    return UpdateScoreStatus.SUCCESS
                c.execute(
                    "INSERT INTO strict_score (timestamp, score_given, score_maximum, comment,"
                    " activity_progress, grading_progress, lineitem_id, user_id)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    values,
                )
                return UpdateScoreStatus.CREATED

        # The rest of the AGS service is not served by this peer.
        def find_lineitems(self, *a, **k):
            raise NotImplementedError

        find_lineitem = create_lineitem = update_lineitem = delete_lineitem = get_results = find_lineitems

    def json_body(request):
        try:
            return json.loads(request.body or b"{}")
        except ValueError:
            return None

    @csrf_exempt
    def strict_token(request):
        if request.method != "POST":
            return JsonResponse({"error": "invalid_request"}, status=405)
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            return JsonResponse(strict_platform().get_access_token(form))
        except MissingRequiredClaim as e:
            return JsonResponse({"error": "invalid_request", "error_description": str(e)}, status=400)
        except UnsupportedGrantType:
            return JsonResponse({"error": "unsupported_grant_type"}, status=400)
        except jwt.ExpiredSignatureError as e:
            return JsonResponse({"error": "invalid_grant", "error_description": str(e)}, status=400)
        except (LtiException, InvalidKeySetUrl, jwt.PyJWTError) as e:
            return JsonResponse({"error": "invalid_client", "error_description": str(e)}, status=400)

    @csrf_exempt
    def strict_jwks(request):
        platform = strict_platform()
        return JsonResponse(platform.get_jwks())

    @csrf_exempt
    def strict_scores(request, lineitem_id):
        service = StrictScores(
            DjangoRequest(request),
            strict_platform(),
            lineitems_url=f"{base}/strict/lineitems",
            lineitem_url=f"{base}/strict/lineitems/{lineitem_id}",
        )
        if service.request.json is None and request.body and "json" in (request.content_type or ""):
            return JsonResponse({"error": "body is not JSON"}, status=400)
        try:
            resp = service.handle_resp(service.handle_update_score, line_item_id=lineitem_id)
        except (LtiException, jwt.PyJWTError) as e:
            # lti1p3platform's validate_token raises these instead of answering: a bad token.
            resp = LtiResponse(result=None, code=401, message=f"Invalid LTI 1.3 authentication token: {e}")
        return wrap_json_resp(resp)

    def passport():
        obj, _ = Lti1p3Passport.objects.get_or_create(
            name=PASSPORT_NAME, defaults={"lti_1p3_tool_keyset_url": args.tool_keyset_url}
        )
        if obj.lti_1p3_tool_keyset_url != args.tool_keyset_url:
            obj.lti_1p3_tool_keyset_url = args.tool_keyset_url
            obj.save()
        return obj

    def edx_lineitem(pp, label):
        return (
            LtiAgsLineItem.objects.filter(lti_configuration__lti_1p3_passport=pp, label=label)
            .select_related("lti_configuration")
            .order_by("id")
            .first()
        )

    @csrf_exempt
    def setup(request):
        body = json_body(request)
        if request.method != "POST" or not isinstance(body, dict):
            return JsonResponse({"error": "POST a JSON object"}, status=400)
        labels, maximum = body.get("lineitems"), body.get("score_maximum", 10)
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) and 0 < len(x) <= 100 for x in labels)
            or isinstance(maximum, bool)
            or not isinstance(maximum, (int, float))
            or maximum <= 0
        ):
            return JsonResponse({"error": "lineitems: non-empty list of labels (1..100 chars); score_maximum > 0"}, status=400)
        pp = passport()
        edx_items, strict_items = {}, {}
        for label in labels:
            item = edx_lineitem(pp, label)
            if item is None:
                config = LtiConfiguration.objects.create(
                    # edX keys configurations by block (location is unique); a block id of our own
                    location=UsageKey.from_string(f"{COURSE_BLOCK}{hashlib.sha1(label.encode()).hexdigest()}"),
                    version=LtiConfiguration.LTI_1P3,
                    config_store=LtiConfiguration.CONFIG_ON_DB,
                    lti_1p3_passport=pp,
                    lti_advantage_ags_mode=LtiConfiguration.LTI_ADVANTAGE_AGS_DECLARATIVE,
                )
                # resource_link_id NULL, not the location: edX stores the scores and publishes
                # nothing (see above).
                item = LtiAgsLineItem.objects.create(
                    lti_configuration=config, resource_id=label, resource_link_id=None,
                    label=label, score_maximum=int(maximum),
                )
            elif item.score_maximum != int(maximum):
                item.score_maximum = int(maximum)
                item.save()
            edx_items[label] = get_lti_ags_lineitems_url(item.lti_configuration_id, item.id)
            with connection.cursor() as c:
                c.execute(
                    "INSERT INTO strict_lineitem (label, score_maximum) VALUES (%s, %s)"
                    " ON CONFLICT (label) DO UPDATE SET score_maximum = excluded.score_maximum",
                    [label, float(maximum)],
                )
                c.execute("SELECT id FROM strict_lineitem WHERE label = %s", [label])
                strict_items[label] = f"{base}/strict/lineitems/{c.fetchone()[0]}"
        return JsonResponse({
            "edx": {
                "issuer": base,
                "client_id": pp.lti_1p3_client_id,
                "deployment_id": "1",  # edX hard-codes it (models.py: "not using multi-tenancy")
                "token_url": f"{base}/api/lti_consumer/v1/token/{pp.passport_id}",
                "keyset_url": f"{base}/api/lti_consumer/v1/public_keysets/{pp.passport_id}",
                "lineitems": edx_items,
            },
            "strict": {
                "issuer": strict_iss,
                "client_id": strict_client_id,
                "deployment_id": strict_deployment,
                "token_url": f"{base}/strict/token",
                "keyset_url": f"{base}/strict/jwks",
                "lineitems": strict_items,
            },
        })

    def scores(request):
        out = []
        for s in LtiAgsScore.objects.select_related("line_item").order_by("id"):
            out.append({
                "peer": "edx",
                "lineitem": get_lti_ags_lineitems_url(s.line_item.lti_configuration_id, s.line_item_id),
                "user_id": s.user_id,
                "score_given": s.score_given,
                "score_maximum": s.score_maximum,
                "timestamp": s.timestamp.isoformat(),
                "activity_progress": s.activity_progress,
                "grading_progress": s.grading_progress,
                "comment": s.comment,
            })
        with connection.cursor() as c:
            c.execute(
                "SELECT lineitem_id, user_id, score_given, score_maximum, timestamp, activity_progress,"
                " grading_progress, comment FROM strict_score ORDER BY rowid"
            )
            for li, user, given, maximum, ts, activity, grading, comment in c.fetchall():
                out.append({
                    "peer": "strict",
                    "lineitem": f"{base}/strict/lineitems/{li}",
                    "user_id": user,
                    "score_given": given,
                    "score_maximum": maximum,
                    "timestamp": ts,
                    "activity_progress": activity,
                    "grading_progress": grading,
                    "comment": comment,
                })
        return JsonResponse(out, safe=False)

    def stats(request):
        return JsonResponse(CONTROL.stats())

    @csrf_exempt
    def mode(request):
        now = CONTROL.set_mode(request.body.decode("utf-8", "replace")) if request.method == "POST" else None
        if now is None:
            return JsonResponse({"error": "POST ok | 500 | 500-times:N | 429-once | 401-once"}, status=400)
        return JsonResponse({"mode": now})

    def launch_label(body, required):
        """The label's edX configuration with the tool's URLs registered on it (as course staff
        register a tool on the block), or an error response."""
        if not isinstance(body, dict):
            return None, JsonResponse({"error": "POST a JSON object"}, status=400)
        missing = [k for k in required if not isinstance(body.get(k), str) or not body[k]]
        wrong = [k for k in ("email", "name", "role", "state", "target_link_uri", "oidc_url")
                 if k in body and not isinstance(body[k], str)]
        if missing or wrong:
            why = ([f"missing: {', '.join(missing)}"] if missing else []) + (
                [f"not strings: {', '.join(wrong)}"] if wrong else [])
            return None, JsonResponse({"error": "; ".join(why)}, status=400)
        pp = Lti1p3Passport.objects.filter(name=PASSPORT_NAME).first()
        item = edx_lineitem(pp, body["label"]) if pp else None
        if item is None:
            return None, JsonResponse({"error": "unknown label: POST /_setup first"}, status=404)
        config = item.lti_configuration
        config.lti_1p3_launch_url = body.get("target_link_uri") or body["redirect_uri"]
        config.lti_1p3_redirect_uris = [body["redirect_uri"]]
        config.lti_1p3_oidc_url = body.get("oidc_url") or body["redirect_uri"]
        config.save()
        return config, None

    def launch_data_for(config, body):
        """edX's launch data, as its XBlock builds them (name and email: the PII a course may
        share with the tool; edX's set_user_data turns them into the `name` and `email` claims)."""
        return Lti1p3LaunchData(
            user_id=body["sub"], user_role=body.get("role", "student"), config_id=config.config_id,
            resource_link_id=body["label"], name=body.get("name") or None, email=body.get("email") or None,
            context_id=COURSE, context_type=["course_offering"], context_title="Otter LTI 1.3 test",
        )

    @csrf_exempt
    def launch(request):
        if request.method != "POST":
            return JsonResponse({"error": "POST a JSON object"}, status=400)
        config, error = launch_label(json_body(request), ("sub", "label", "nonce", "redirect_uri"))
        if error:
            return error
        body = json_body(request)
        # edX's launch, as its XBlock and launch_gate_endpoint drive it: the launch data cached
        # with the OIDC login URL (prepare_preflight_url), then the claims set from it and the
        # id_token signed (generate_launch_request). The browser legs are not run here (see
        # /_preflight for a launch through edX's launch gate).
        launch_data = launch_data_for(config, body)
        consumer = config.get_lti_consumer()  # edX's LtiAdvantageConsumer, AGS claim included
        login_url = consumer.prepare_preflight_url(launch_data)
        hint = urllib.parse.parse_qs(urllib.parse.urlsplit(login_url).query)["lti_message_hint"][0]
        consumer.set_user_data(
            user_id=launch_data.user_id, role=launch_data.user_role,
            full_name=launch_data.name, email_address=launch_data.email,
        )
        consumer.set_resource_link_claim(launch_data.resource_link_id)
        consumer.set_context_claim(
            launch_data.context_id, get_lti_1p3_context_types_claim(launch_data.context_type),
            launch_data.context_title,
        )
        state = body.get("state") or uuid.uuid4().hex
        launch = consumer.generate_launch_request({
            "nonce": body["nonce"],
            "state": state,
            "redirect_uri": body["redirect_uri"],
            "client_id": consumer.client_id,
            "lti_message_hint": hint,
        })
        return JsonResponse({"id_token": launch["id_token"], "state": launch["state"], "login_url": login_url})

    @csrf_exempt
    def preflight(request):
        if request.method != "POST":
            return JsonResponse({"error": "POST a JSON object"}, status=400)
        config, error = launch_label(
            json_body(request), ("sub", "label", "oidc_url", "redirect_uri", "target_link_uri")
        )
        if error:
            return error
        # What edX's XBlock does when a student opens the component: the launch data cached
        # and the third-party login URL built (prepare_preflight_url).
        login_url = config.get_lti_consumer().prepare_preflight_url(launch_data_for(config, json_body(request)))
        return JsonResponse({"login_url": login_url, "authorize_url": f"{base}{LAUNCH_GATE}"})

    real_time = edx_key_handlers.time
    expired_lock = threading.Lock()

    class ClockBehind:
        """`time` as edX's key handler module sees it during an `otter_expired=1` launch: two
        hours behind in that request's thread (iat 2 h ago, exp = iat + 3600 = 1 h ago), the
        real clock in every other thread."""

        def __init__(self, thread):
            self.thread = thread

        def __getattr__(self, name):
            return getattr(real_time, name)

        def time(self):
            now = real_time.time()
            return now - 7200 if threading.get_ident() == self.thread else now

    @csrf_exempt
    def launch_gate(request, suffix=None):
        """edX's launch gate as shipped, unless the request carries our `otter_expired=1`."""
        params = request.GET if request.method == "GET" else request.POST
        if params.get("otter_expired") != "1":
            return launch_gate_endpoint(request, suffix=suffix)
        with expired_lock:
            edx_key_handlers.time = ClockBehind(threading.get_ident())
            try:
                return launch_gate_endpoint(request, suffix=suffix)
            finally:
                edx_key_handlers.time = real_time

    def not_found(request, *a, **k):
        return HttpResponse("not found\n", status=404, content_type="text/plain")

    urls = types.ModuleType("lti13_platform_urls")
    urls.urlpatterns = [
        # edX's launch gate, through the test knob in front of it (launch_gate)
        re_path(r"^api/lti_consumer/v1/launch/(?:/(?P<suffix>.*))?$", launch_gate),
        path("api/", include("lti_consumer.plugin.urls", namespace="lti_consumer")),  # edX's
        path("strict/token", strict_token),
        path("strict/jwks", strict_jwks),
        path("strict/lineitems/<int:lineitem_id>/scores", strict_scores),
        path("_setup", setup),
        path("_scores", scores),
        path("_stats", stats),
        path("_mode", mode),
        path("_launch", launch),
        path("_preflight", preflight),
        re_path(r"^", not_found),
    ]
    sys.modules["lti13_platform_urls"] = urls


def make_app(django_app):
    """Counts requests on the token and score routes and injects the failures of /_mode."""

    def app(environ, start_response):
        route = environ.get("PATH_INFO", "")
        peer = "edx" if EDX_SCORES.match(route) else "strict" if STRICT_SCORES.match(route) else None
        if peer is None:
            token_peer = "edx" if EDX_TOKEN.match(route) else "strict" if STRICT_TOKEN.match(route) else None
            if token_peer:
                with CONTROL.lock:
                    CONTROL.tokens[token_peer] += 1
            return django_app(environ, start_response)
        with CONTROL.lock:
            CONTROL.scores[peer] += 1
        failure = CONTROL.injected()
        if failure:
            CONTROL.answered(str(failure))
            headers = [("Content-Type", "application/json")]
            if failure == 429:
                headers.append(("Retry-After", "1"))
            if failure == 401:
                headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            reason = {500: "Internal Server Error", 429: "Too Many Requests", 401: "Unauthorized"}[failure]
            start_response(f"{failure} {reason}", headers)
            return [json.dumps({"error": f"injected by /_mode ({failure})"}).encode()]

        def recording_start_response(status, headers, exc_info=None):
            CONTROL.answered(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        return django_app(environ, recording_start_response)

    return app


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when a client opens many connections at
    # once while the request threads hold the GIL: connections were then reset.
    request_queue_size = 128


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        if os.environ.get("LTI13_PLATFORM_LOG"):
            super().log_message(format, *args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LTI13_PLATFORM_PORT", "0")))
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--tool-keyset-url", required=True, help="the tool's JWKS URL")
    args = parser.parse_args()

    server = Server(("127.0.0.1", args.port), QuietHandler)
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    db = os.path.abspath(args.db)
    configure_django(db, base)
    build(args, base)
    from django.core.wsgi import get_wsgi_application

    server.set_app(make_app(get_wsgi_application()))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"LTI13_PLATFORM_PORT={port}", flush=True)
    while not stop.wait(1):
        pass
    server.shutdown()
    server.server_close()
    from django.db import connections

    connections.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
