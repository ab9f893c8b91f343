"""A receiver of Standard Webhooks (https://www.standardwebhooks.com/) for the tests.

Every delivery is verified with the spec's reference library, PyPI standardwebhooks 1.1.0
(installed by scripts/setup-webhooks.sh, imported from that venv):
`Webhook(secret).verify(body_bytes, headers)`, which checks the `webhook-id`,
`webhook-timestamp` and `webhook-signature` headers, the 5-minute tolerance of the timestamp and
a `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` among the space-separated signatures.
Nothing here computes or compares a signature. What is ours: the HTTP server (stdlib
ThreadingHTTPServer on 127.0.0.1), the record of deliveries, the failure script, and the clock
shift of /replay.

usage: python webhook_receiver.py --secret whsec_... [--secret whsec_...] [--port N] [--log FILE]
  --secret  given twice (secret rotation): a delivery verifies if either secret verifies it.
  --port    0 (the default) = any free port. Prints `WEBHOOK_PORT=<port>` on stdout once
            listening. SIGTERM: exit. Nothing on stderr per request, only errors.
  --log     JSON-lines file of every delivery, appended (one line per delivery, flushed) and
            loaded at start, so a receiver restarted on it keeps its history (and its duplicates).

Routes:
  POST <any other path>  a delivery (tests may use several hook paths). Recorded as
            {"id", "timestamp", "signature" (the three headers, "" when absent), "verified",
             "error" (the verifier's message, null when verified), "body" (parsed JSON or
             null), "raw_body" (the exact body text), "headers" (all, names lower case),
             "path", "status" (what we answered), "duplicate" (this id was verified and
             answered 2xx before), "received_at" (unix time, float)}
            and answered: an armed failure's status (and Retry-After), else 200 when verified
            (a duplicate too: receivers ack duplicates), else 400. With a delay set, the answer
            (and the record) waits that long first.
  GET  /deliveries       every record, in order (the loaded history first).
  POST /control          JSON, keys combinable: {"fail": N, "status": 503, "retry_after": 2}
            the next N deliveries are answered with that status (and Retry-After: 2; no
            header without retry_after); {"delay_ms": M} every delivery waits M ms before
            its answer; {"reset": true} clears the failure script and the delay (not the
            history). Answers the resulting {"fail", "status", "retry_after", "delay_ms"}.
  POST /replay           {"headers": {...}, "body": "<exact body text>", "now_offset_secs": S}:
            the reference verifier run on that captured delivery as if the clock were S
            seconds ahead; answers {"verified": bool, "error": str|null}. Nothing recorded.

The clock shift: standardwebhooks 1.1.0 reads the time in one place, `datetime.now(tz=
timezone.utc)` in Webhook.__verify_timestamp, through the name `datetime` that its module
`standardwebhooks.webhooks` imported (`from datetime import datetime`). For one /replay call
that module global is replaced by a subclass of datetime whose now() is S seconds ahead, and
put back after; every verification (deliveries too) holds one lock, so no other verification
ever sees the shifted clock.
"""

import argparse
import datetime as _dt
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks.webhooks as _swh
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

CONTROL_PATHS = {"/deliveries", "/control", "/replay"}

# The library's clock, as /replay shifts it: fail at start if a version reads it otherwise.
if getattr(_swh, "datetime", None) is not _dt.datetime:
    sys.exit("standardwebhooks.webhooks does not read the time through its `datetime` global: "
             "the /replay clock shift needs looking at for this version")

_VERIFY_LOCK = threading.Lock()


def _shifted_datetime(offset_secs):
    class ShiftedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return _dt.datetime.now(tz) + _dt.timedelta(seconds=offset_secs)

    return ShiftedDatetime


def verify(secrets, body, headers, now_offset_secs=0):
    """(verified, error): the reference library with each secret, the first that verifies."""
    errors = []
    with _VERIFY_LOCK:
        if now_offset_secs:
            _swh.datetime = _shifted_datetime(now_offset_secs)
        try:
            for secret in secrets:
                try:
                    # json_parse=False: the signature is the question; the body is parsed apart
                    # (a signed body that is not JSON is still a verified delivery).
                    Webhook(secret).verify(body, headers, json_parse=False)
                    return True, None
                except WebhookVerificationError as e:
                    msg = str(e)
                except Exception as e:  # noqa: BLE001 - the library raises others on bad input
                    msg = f"{type(e).__name__}: {e}"
                if msg not in errors:
                    errors.append(msg)
        finally:
            _swh.datetime = _dt.datetime
    return False, "; ".join(errors)


class State:
    def __init__(self, secrets, log_path):
        self.secrets = secrets
        self.lock = threading.Lock()
        self.records = []
        self.acked = set()  # ids verified and answered 2xx
        self.fail = 0
        self.fail_status = 503
        self.retry_after = None
        self.delay_ms = 0
        self.log = None
        if log_path:
            if os.path.exists(log_path):
                with open(log_path, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        if not line.strip():
                            continue
                        try:
                            rec = json.loads(line)
                        except ValueError:
                            print(f"webhook_receiver: {log_path}:{n}: not JSON, skipped", file=sys.stderr)
                            continue
                        self._remember(rec)
            self.log = open(log_path, "a", encoding="utf-8")

    def _remember(self, rec):
        self.records.append(rec)
        if rec.get("verified") and 200 <= rec.get("status", 0) < 300 and rec.get("id"):
            self.acked.add(rec["id"])

    def control(self, req):
        with self.lock:
            if req.get("reset"):
                self.fail, self.fail_status, self.retry_after, self.delay_ms = 0, 503, None, 0
            if "fail" in req:
                self.fail = int(req["fail"])
                self.fail_status = int(req.get("status", 503))
                ra = req.get("retry_after")
                self.retry_after = None if ra is None else int(ra)
            if "delay_ms" in req:
                self.delay_ms = int(req["delay_ms"])
            return {"fail": self.fail, "status": self.fail_status, "retry_after": self.retry_after,
                    "delay_ms": self.delay_ms}

    def delivery(self, path, headers, body):
        """(status, extra headers, record) for one delivery; recorded and logged."""
        text = body.decode("utf-8", errors="replace")
        verified, error = verify(self.secrets, body, headers)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        with self.lock:
            delay = self.delay_ms
        if delay:
            time.sleep(delay / 1000)
        msg_id = headers.get("webhook-id", "")
        with self.lock:
            extra = {}
            if self.fail > 0:
                self.fail -= 1
                status = self.fail_status
                if self.retry_after is not None:
                    extra["Retry-After"] = str(self.retry_after)
            else:
                status = 200 if verified else 400
            rec = {
                "id": msg_id,
                "timestamp": headers.get("webhook-timestamp", ""),
                "signature": headers.get("webhook-signature", ""),
                "verified": verified,
                "error": error,
                "body": parsed,
                "raw_body": text,
                "headers": headers,
                "path": path,
                "status": status,
                "duplicate": bool(msg_id) and msg_id in self.acked,
                "received_at": time.time(),
            }
            self._remember(rec)
            if self.log:
                self.log.write(json.dumps(rec) + "\n")
                self.log.flush()
        return status, extra, rec


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webhook-receiver"
    state: State = None

    def log_request(self, code="-", size="-"):  # no line per request; errors still logged
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the sender gave up (e.g. its timeout, a slow answer)

    def do_GET(self):
        if self.path == "/deliveries":
            with self.state.lock:
                records = list(self.state.records)
            self.answer(200, records)
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self):
        body = self.read_body()
        path = self.path
        if path in ("/control", "/replay"):
            try:
                req = json.loads(body or b"{}")
            except ValueError as e:
                return self.answer(400, {"error": f"not JSON: {e}"})
            if path == "/control":
                return self.answer(200, self.state.control(req))
            hdrs = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
            verified, error = verify(self.state.secrets, req.get("body", "").encode("utf-8"), hdrs,
                                     int(req.get("now_offset_secs", 0)))
            return self.answer(200, {"verified": verified, "error": error})
        if path in CONTROL_PATHS:
            return self.answer(405, {"error": "method not allowed"})
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, rec = self.state.delivery(path, headers, body)
        self.answer(status, {"verified": rec["verified"], "error": rec["error"]}, extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secret", action="append", required=True, help="whsec_...; twice for rotation")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", default=None, help="JSON-lines file of deliveries (appended, loaded at start)")
    args = ap.parse_args()
    for s in args.secret:
        Webhook(s)  # a bad secret fails here, not on the first delivery
    Handler.state = State(args.secret, args.log)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"WEBHOOK_PORT={server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
