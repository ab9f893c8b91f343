"""An XQueue for the tests, built on edX's own XQueue API code.

What is edX's (PyPI edx-submissions 4.0.2, installed by scripts/setup-xqueue.sh and imported
from that venv at run time; nothing of it is copied here):
  * every route under /xqueue/: edx-submissions' URL module `submissions.urls` (a DRF
    DefaultRouter over `submissions.views.xqueue.XQueueViewSet`), mounted at `xqueue/` as edX's
    LMS mounts it: login (GET sets the csrftoken cookie, POST username/password opens a Django
    session), logout, get_submission, put_result and status, with the viewset's own
    SessionAuthentication (CSRF enforced for logged-in unsafe requests) and IsXQueueUser
    permission (the user must be in the Django group `xqueue`), its 5-minute lease, pull keys,
    score scaling (`round(score * points_possible)`), retry/failed counting and the
    openedx-events EXTERNAL_GRADER_SCORE_SUBMITTED event it sends on a recorded score;
  * the submission side: /_submit creates each submission with
    `submissions.api.create_external_grader_detail(student_item, answer, queue_name=,
    queue_key=, grader_file_name=, points_possible=, files=)`, called the way the LMS calls it
    (openedx-platform xmodule/capa/xqueue_submission.py: grader_file_name is the `grader` key
    of the problem's grader payload, queue_key is the LMS's lms_key, item_type the block type,
    each file an object whose `.file` is a Django File); the learner's file is stored by
    edx-submissions' `SubmissionFile` model in Django's default storage;
  * its models and migrations, in the SQLite file given by --db; scores are read back with
    `submissions.api.get_latest_score_for_submission` and `get_score`.

What is ours:
  * the Django project around edX's app (settings as the LMS has them where it matters: DRF
    renders JSON only, each request one transaction (ATOMIC_REQUESTS), session, common (slash
    redirect), CSRF and auth middleware, database sessions so a restart keeps a grader logged
    in), served by wsgiref's server with one thread per request on 127.0.0.1 (no runserver);
  * the file storage: Django's FileSystemStorage in `<db>.files/` next to the --db file, served
    by this process at /media/ (MEDIA_URL is absolute, `http://127.0.0.1:<port>/media/`, as an
    S3-backed LMS gives absolute URLs; edX stores the file as `<queue>/<uuid>`, no file name);
  * the users of --users (created or updated at start, put in the group `xqueue`);
  * the control routes below, and failure injection in front of /xqueue/.

usage: python xqueue_server.py --db FILE [--port N] [--users user:password,...]
       --port 0 (the default) = any free port. The SQLite file keeps everything (submissions,
       pull keys, scores, sessions, users); the files stay in FILE.files/. Prints
       `XQUEUE_PORT=<port>` on stdout once listening. SIGTERM/SIGINT: clean exit. Logs (edX's
       warnings and errors, tracebacks) go to stderr; XQUEUE_LOG=1 adds each request and edX's
       info lines.

Control routes (JSON):
  POST /_submit  {"queue": "notebooks", "student": "anon-id", "course_id": "course-v1:X+Y+Z",
                 "item_id": "block-v1:X+Y+Z+type@problem+block@p1", "points_possible": 5,
                 "grader_payload": {"grader": "hw1/grader.py", ...}, "answer": "..." (any JSON
                 value, default ""), "file": {"name": "sub.ipynb", "content_b64": "..."} | null,
                 optional "files": [more such objects], "queue_key" (default: an md5 hex like
                 the LMS's lms_key)}. Only the payload's "grader" key reaches the grader (edX
                 serves grader_payload as {"grader": grader_file_name}). Answers
                 {"submission_uuid", "submission_id" (the id in the xqueue_header),
                 "external_grader_id", "queue_key", "student_item", "files": {name: url}}.
  GET  /_results every external grader detail, oldest first: [{external_grader_id,
                 submission_id, submission_uuid, queue_name, queue_key, grader_file_name,
                 student_item, answer, files, points_possible, status (pending | pulled | retry
                 | retired | failed), status_time, created_at, has_pullkey, num_failures,
                 score (the submission's latest Score: {points_earned, points_possible,
                 created_at} or null), item_score (get_score of its student item), grader_reply
                 (the xqueue_body string of the put_result that was recorded, or null), reply
                 (that string parsed, or null), events ([EXTERNAL_GRADER_SCORE_SUBMITTED data])}]
  POST /_mode    body `ok` | `500` | `500-times:N` | `503` | `down`: how /xqueue/ answers
                 (500: every request, an HTML error page, edX's view not run; 500-times:N the
                 next N; 503: every request, Retry-After: 1; down: every connection closed
                 without an answer). Answers {"mode": ...}.
  POST /_expire  every `pulled` row's status_time set 6 minutes back, so the next
                 get_submission serves it again (edX's lease is 5 minutes). Answers
                 {"expired": n}.
  GET  /_stats   {"routes": {"GET /xqueue/get_submission/": {"200": n, ...}, ...}, "mode"}
                 (every request this process saw; /media/ files counted as `GET /media/*`;
                 `closed` = a connection closed by the down mode).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time
import types
import uuid
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

XQUEUE_PREFIX = "/xqueue/"


class Control:
    """Counters and the failure mode of /xqueue/ (shared by all request threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "ok"  # ok | 500 | 500-times | 503 | down
        self.remaining = 0
        self.routes = {}

    def set_mode(self, text):
        text = text.strip()
        with self.lock:
            if text in ("ok", "500", "503", "down"):
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
        """The failure the next /xqueue/ request gets, if any (consumes 500-times)."""
        with self.lock:
            mode = self.mode
            if mode in ("500", "503", "down"):
                return mode
            if mode == "500-times":
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode = "ok"
                return "500"
            return None

    def count(self, method, path, status):
        if path.startswith("/media/"):
            path = "/media/*"
        key = f"{method} {path}"
        with self.lock:
            per = self.routes.setdefault(key, {})
            per[status] = per.get(status, 0) + 1

    def stats(self):
        with self.lock:
            return {"routes": {k: dict(v) for k, v in self.routes.items()}, "mode": self.describe()}


CONTROL = Control()


def configure_django(db, base, media_root):
    import importlib.util

    if importlib.util.find_spec("submissions") is None:
        sys.exit("edx-submissions is not installed: run scripts/setup-xqueue.sh")
    from django.conf import settings

    verbose = bool(os.environ.get("XQUEUE_LOG"))
    settings.configure(
        DEBUG=False,
        SECRET_KEY="otter-xqueue-test-server",  # sessions and CSRF tokens are signed with it
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "rest_framework",
            "submissions",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": db,
                # As in the LMS: each request is one transaction (a failing request stores nothing).
                "ATOMIC_REQUESTS": True,
                # One writer at a time without "database is locked": writers take the lock at BEGIN
                # and wait for it up to 30 s. (SQLite has no SELECT ... FOR UPDATE: edX's
                # select_for_update(skip_locked / nowait) is a no-op here, so its 409 on a
                # concurrent put_result cannot happen; requests are serialised instead.)
                "OPTIONS": {
                    "timeout": 30,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL;",
                },
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        ROOT_URLCONF="xqueue_server_urls",
        USE_TZ=True,
        TIME_ZONE="UTC",
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        SESSION_ENGINE="django.contrib.sessions.backends.db",
        # The LMS's DRF settings: JSON only, no ?format= override.
        REST_FRAMEWORK={
            "DEFAULT_RENDERER_CLASSES": ("rest_framework.renderers.JSONRenderer",),
            "URL_FORMAT_OVERRIDE": None,
        },
        MEDIA_ROOT=media_root,
        MEDIA_URL=f"{base}/media/",
        OPENEDX_TELEMETRY=[],  # edx_django_utils (via openedx-events): no New Relic here
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": sys.stderr}},
            "loggers": {
                "django.request": {"handlers": ["stderr"], "level": "ERROR"},
                "submissions": {"handlers": ["stderr"], "level": "INFO" if verbose else "WARNING"},
            },
        },
    )
    import django

    django.setup()


def build(args, media_root):
    """Everything that needs Django set up: users, our views, the URL module."""
    from django.contrib.auth.models import Group, User
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.http import JsonResponse
    from django.urls import include, path, re_path
    from django.utils import timezone
    from django.views.decorators.csrf import csrf_exempt
    from django.views.static import serve

    # edX's code
    from openedx_events.learning.signals import EXTERNAL_GRADER_SCORE_SUBMITTED
    from submissions import api as sub_api
    from submissions.models import ExternalGraderDetail

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as c:
        c.execute(
            "CREATE TABLE IF NOT EXISTS otter_xqueue_event (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " submission_id INTEGER NOT NULL, data TEXT NOT NULL)"
        )

    group, _ = Group.objects.get_or_create(name="xqueue")
    for spec in filter(None, (args.users or "").split(",")):
        name, sep, password = spec.partition(":")
        if not sep or not name:
            sys.exit(f"--users: {spec!r} is not user:password")
        user, _ = User.objects.get_or_create(username=name)
        # Only a changed password is set again: a new hash would end the sessions of the
        # grader logged in before a restart (Django ties a session to the password hash).
        if not user.check_password(password):
            user.set_password(password)
            user.save()
        user.groups.add(group)

    # What the LMS would receive from put_result: kept in the same transaction as edX's
    # score (a put_result that fails afterwards keeps no event).
    def on_score_event(sender, signal=None, score=None, metadata=None, **kwargs):
        data = {
            "points_possible": score.points_possible,
            "points_earned": score.points_earned,
            "course_id": str(score.course_id),
            "score_msg": score.score_msg,
            "submission_id": score.submission_id,
            "user_id": score.user_id,
            "module_id": str(score.module_id),
            "queue_key": score.queue_key,
            "queue_name": score.queue_name,
            "time": metadata.time.isoformat() if metadata else None,
        }
        with connection.cursor() as c:
            c.execute(
                "INSERT INTO otter_xqueue_event (submission_id, data) VALUES (%s, %s)",
                [int(score.submission_id), json.dumps(data)],
            )

    EXTERNAL_GRADER_SCORE_SUBMITTED.connect(on_score_event, weak=False)

    def json_body(request):
        try:
            return json.loads(request.body or b"{}")
        except ValueError:
            return None

    def bad(message):
        return JsonResponse({"error": message}, status=400)

    def nonempty(body, key):
        value = body.get(key)
        return isinstance(value, str) and value != ""

    @csrf_exempt
    def submit(request):
        body = json_body(request)
        if request.method != "POST" or not isinstance(body, dict):
            return bad("POST a JSON object")
        missing = [k for k in ("queue", "student", "course_id", "item_id") if not nonempty(body, k)]
        if missing:
            return bad(f"missing: {', '.join(missing)}")
        points = body.get("points_possible", 1)
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            return bad("points_possible: an integer >= 0")
        payload = body.get("grader_payload") or {}
        if not isinstance(payload, dict):
            return bad("grader_payload: a JSON object")
        grader = payload.get("grader", "")
        if not isinstance(grader, str):
            return bad("grader_payload.grader: a string")
        specs = []
        if body.get("file") is not None:
            specs.append(body["file"])
        extra = body.get("files") or []
        if not isinstance(extra, list):
            return bad("files: a list")
        specs.extend(extra)
        files = {}
        for spec in specs:
            if not isinstance(spec, dict) or not nonempty(spec, "name") or not isinstance(spec.get("content_b64"), str):
                return bad("file: {name, content_b64}")
            try:
                content = base64.b64decode(spec["content_b64"], validate=True)
            except ValueError:
                return bad("file.content_b64 is not base64")
            # The LMS hands edx-submissions objects with .name and .file (FileObjForWebobFiles);
            # edx-submissions stores `.file` in a FileField, so it must be a Django File.
            files[spec["name"]] = types.SimpleNamespace(
                name=spec["name"], file=ContentFile(content, name=spec["name"])
            )
        item_id = body["item_id"]
        m = re.search(r"type@([^+]+)", item_id)
        student_item = {
            "student_id": body["student"],
            "course_id": body["course_id"],
            "item_id": item_id,
            "item_type": m.group(1) if m else "problem",
        }
        queue_key = body.get("queue_key")
        if queue_key is None:
            # The LMS: make_hashkey(seed + qtime + anonymous_student_id + answer_id), an md5 hex.
            queue_key = hashlib.md5(
                f"1{time.time_ns()}{body['student']}{item_id}{uuid.uuid4()}".encode()
            ).hexdigest()
        answer = body.get("answer", "")
        detail = sub_api.create_external_grader_detail(
            student_item,
            answer,
            queue_name=body["queue"],
            queue_key=queue_key,
            grader_file_name=grader,
            points_possible=points,
            files=files or None,
        )
        return JsonResponse({
            "submission_uuid": str(detail.submission.uuid),
            "submission_id": detail.submission.id,
            "external_grader_id": detail.id,
            "queue_key": detail.queue_key,
            "student_item": student_item,
            "files": sub_api.get_files_for_grader(detail),
        })

    def events_by_submission():
        out = {}
        with connection.cursor() as c:
            c.execute("SELECT submission_id, data FROM otter_xqueue_event ORDER BY id")
            for sid, data in c.fetchall():
                out.setdefault(sid, []).append(json.loads(data))
        return out

    def score_dict(score):
        if not score:
            return None
        created = score.get("created_at")
        return {
            "points_earned": score["points_earned"],
            "points_possible": score["points_possible"],
            "created_at": created.isoformat() if hasattr(created, "isoformat") else created,
        }

    def results(request):
        events = events_by_submission()
        out = []
        rows = ExternalGraderDetail.objects.select_related("submission__student_item").order_by("created_at", "id")
        for d in rows:
            sub = d.submission
            item = sub.student_item
            student_item = {
                "student_id": item.student_id, "course_id": item.course_id,
                "item_id": item.item_id, "item_type": item.item_type,
            }
            reply = None
            if d.grader_reply is not None:
                try:
                    reply = json.loads(d.grader_reply)
                except ValueError:
                    reply = None
            out.append({
                "external_grader_id": d.id,
                "submission_id": sub.id,
                "submission_uuid": str(sub.uuid),
                "queue_name": d.queue_name,
                "queue_key": d.queue_key,
                "grader_file_name": d.grader_file_name,
                "student_item": student_item,
                "answer": sub.answer,
                "files": sub_api.get_files_for_grader(d),
                "points_possible": d.points_possible,
                "status": d.status,
                "status_time": d.status_time.isoformat(),
                "created_at": d.created_at.isoformat(),
                "has_pullkey": bool(d.pullkey),
                "num_failures": d.num_failures,
                "score": score_dict(sub_api.get_latest_score_for_submission(str(sub.uuid))),
                "item_score": score_dict(sub_api.get_score(student_item)),
                "grader_reply": d.grader_reply,
                "reply": reply,
                "events": events.get(sub.id, []),
            })
        return JsonResponse(out, safe=False)

    @csrf_exempt
    def mode(request):
        now = CONTROL.set_mode(request.body.decode("utf-8", "replace")) if request.method == "POST" else None
        if now is None:
            return bad("POST ok | 500 | 500-times:N | 503 | down")
        return JsonResponse({"mode": now})

    @csrf_exempt
    def expire(request):
        if request.method != "POST":
            return bad("POST")
        with transaction.atomic():
            n = ExternalGraderDetail.objects.filter(status="pulled").update(
                status_time=timezone.now() - datetime.timedelta(minutes=6)
            )
        return JsonResponse({"expired": n})

    def stats(request):
        return JsonResponse(CONTROL.stats())

    urls = types.ModuleType("xqueue_server_urls")
    urls.urlpatterns = [
        path("xqueue/", include("submissions.urls")),  # edX's, where the LMS mounts it
        re_path(r"^media/(?P<path>.+)$", serve, {"document_root": media_root}),
        path("_submit", submit),
        path("_results", results),
        path("_mode", mode),
        path("_expire", expire),
        path("_stats", stats),
        # No catch-all: a URL without its trailing slash must stay unresolved for
        # CommonMiddleware to answer 301 to the slashed one, as the LMS does.
    ]
    sys.modules["xqueue_server_urls"] = urls


INJECTED_500 = (
    b"<!doctype html>\n<html lang=\"en\">\n<head><title>Server Error (500)</title></head>\n"
    b"<body><h1>Server Error (500)</h1><p>injected by /_mode</p></body>\n</html>\n"
)


def make_app(django_app):
    """Counts every request and injects the failures of /_mode in front of /xqueue/."""

    def app(environ, start_response):
        route = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        failure = CONTROL.injected() if route.startswith(XQUEUE_PREFIX) else None
        if failure == "500":
            CONTROL.count(method, route, "500")
            start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8")])
            return [INJECTED_500]
        if failure in ("503", "down"):  # down: the handler closes first; a race answers 503
            CONTROL.count(method, route, "503")
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")])
            return [b"service unavailable (injected by /_mode)\n"]

        def counting_start_response(status, headers, exc_info=None):
            CONTROL.count(method, route, status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        return django_app(environ, counting_start_response)

    return app


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when a client opens many connections at once.
    request_queue_size = 128


class Handler(WSGIRequestHandler):
    """wsgiref's handler, plus the `down` mode: an /xqueue/ request is read and its connection
    closed without an answer (the client sees the server drop the connection)."""

    def handle(self):
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        path = self.path.split("?", 1)[0]
        if path.startswith(XQUEUE_PREFIX) and CONTROL.mode == "down":
            CONTROL.count(self.command, path, "closed")
            self.close_connection = True
            return
        handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=False)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def log_message(self, format, *args):
        if os.environ.get("XQUEUE_LOG"):
            super().log_message(format, *args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("XQUEUE_PORT", "0")))
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--users", default="", help="user:password,... (put in the group xqueue)")
    args = parser.parse_args()

    server = Server(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    db = os.path.abspath(args.db)
    media_root = db + ".files"
    os.makedirs(media_root, exist_ok=True)
    configure_django(db, base, media_root)
    build(args, media_root)
    from django.core.wsgi import get_wsgi_application

    server.set_app(make_app(get_wsgi_application()))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"XQUEUE_PORT={port}", flush=True)
    while not stop.wait(1):
        pass
    server.shutdown()
    server.server_close()
    from django.db import connections

    connections.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
