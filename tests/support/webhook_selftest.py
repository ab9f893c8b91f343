"""Self-test of tests/support/webhook_receiver.py (not part of CI).

Starts the receiver (two secrets, as during a rotation, and a --log file), signs deliveries
with the reference library's own `Webhook(secret).sign(msg_id, timestamp, body)`, posts them
with urllib and checks what is recorded and answered: verified, tampered, stale, duplicate,
the failure script (503 with Retry-After, then 200; 410 without), the delay, /replay outside
and inside the 5-minute tolerance, and a restart on the same port and log. Each receiver is
killed by its PID.

usage: $WEBHOOKS_VENV/bin/python tests/support/webhook_selftest.py
       (the venv of scripts/setup-webhooks.sh). Exit status 0 when every check passed.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from standardwebhooks.webhooks import Webhook

HERE = os.path.dirname(os.path.abspath(__file__))
OLD = "whsec_" + base64.b64encode(b"old-secret-for-the-selftest-0001").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-for-the-selftest-0002").decode()
OTHER = "whsec_" + base64.b64encode(b"a-secret-the-receiver-never-saw").decode()
FAILURES = []
T0 = time.monotonic()


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


class Receiver:
    def __init__(self, log, port=0):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "webhook_receiver.py"), "--port", str(port),
             "--secret", OLD, "--secret", NEW, "--log", log],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("WEBHOOK_PORT="):
            self.kill()
            sys.exit(f"receiver did not start (first line {line!r})")
        self.port = int(line.split("=", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()

    def request(self, method, path, data=None, headers=None):
        """(status, headers, parsed JSON body) for any status."""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.loads(e.read() or b"null")

    def post_json(self, path, obj):
        return self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})[2]

    def deliveries(self):
        return self.request("GET", "/deliveries")[2]

    def deliver(self, msg_id, body, secret=NEW, ts=None, path="/hook", sig=None, sent_body=None):
        ts = ts or datetime.now(tz=timezone.utc)
        signature = sig or Webhook(secret).sign(msg_id, ts, body)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(ts.timestamp())),
                   "webhook-signature": signature, "Content-Type": "application/json"}
        sent = (body if sent_body is None else sent_body).encode()
        status, hdrs, _ = self.request("POST", path, sent, headers)
        return status, hdrs, self.deliveries()[-1]


def main():
    tmp = tempfile.mkdtemp(prefix="webhook-selftest-")
    log = os.path.join(tmp, "webhooks.jsonl")
    receivers = []
    try:
        rx = Receiver(log)
        receivers.append(rx)
        print(f"  receiver on port {rx.port} (pid {rx.proc.pid}), started in {time.monotonic() - T0:.2f} s")
        body = json.dumps({"type": "grading.completed", "data": {"submission": "s-1", "score": 0.75}})

        st, _, d = rx.deliver("msg_1", body)
        check(st == 200 and d["verified"] and d["error"] is None and not d["duplicate"]
              and d["body"]["data"]["score"] == 0.75 and d["raw_body"] == body and d["status"] == 200
              and d["path"] == "/hook", f"signed with the new secret: 200, verified ({st}, {d['error']})")
        st, _, d = rx.deliver("msg_2", body, secret=OLD, path="/other-hook")
        check(st == 200 and d["verified"] and d["path"] == "/other-hook",
              f"signed with the old secret (rotation), another hook path: 200, verified ({st})")
        st, _, d = rx.deliver("msg_3", body, sent_body=body.replace("0.75", "1.0"))
        check(st == 400 and not d["verified"] and d["error"] == "No matching signature found" and d["status"] == 400,
              f"tampered body: 400, not verified ({st}, {d['error']!r})")
        st, _, d = rx.deliver("msg_4", body, secret=OTHER)
        check(st == 400 and not d["verified"], f"signed with an unknown secret: 400 ({st}, {d['error']!r})")
        st, _, d = rx.deliver("msg_5", body, ts=datetime.now(tz=timezone.utc) - timedelta(minutes=6))
        check(st == 400 and d["error"] == "Message timestamp too old", f"timestamp 6 min old: 400 ({d['error']!r})")
        good = Webhook(NEW).sign("msg_6", datetime.now(tz=timezone.utc), body)
        st, _, d = rx.deliver("msg_6", body, sig=f"v1,{base64.b64encode(b'x' * 32).decode()} {good}")
        check(st == 200 and d["verified"], f"two signatures, the second one right: verified ({st})")
        st, _, d = rx.deliver("msg_7", "not json", secret=NEW)
        check(st == 200 and d["verified"] and d["body"] is None and d["raw_body"] == "not json",
              f"signed body that is not JSON: verified, body null ({st})")
        st, _, d = rx.deliver("msg_1", body)
        check(st == 200 and d["verified"] and d["duplicate"], f"msg_1 again: 200 and flagged duplicate ({st})")
        st, _, d = rx.deliver("msg_3", body)
        check(st == 200 and d["verified"] and not d["duplicate"],
              "msg_3 properly signed after a refused attempt: not a duplicate")

        ctl = rx.post_json("/control", {"fail": 1, "status": 503, "retry_after": 2})
        check(ctl == {"fail": 1, "status": 503, "retry_after": 2, "delay_ms": 0}, f"/control armed: {ctl}")
        st, hdrs, d = rx.deliver("msg_8", body)
        check(st == 503 and hdrs.get("Retry-After") == "2" and d["status"] == 503 and d["verified"],
              f"failure script: 503, Retry-After {hdrs.get('Retry-After')}, recorded ({st})")
        st, hdrs, d = rx.deliver("msg_8", body)
        check(st == 200 and hdrs.get("Retry-After") is None and not d["duplicate"],
              f"...then 200, not a duplicate (the 503 was no ack) ({st})")
        rx.post_json("/control", {"fail": 2, "status": 410})
        codes = [rx.deliver(f"msg_9{i}", body)[:2] for i in range(3)]
        check([c for c, _ in codes] == [410, 410, 200] and all(h.get("Retry-After") is None for _, h in codes),
              f"fail 2 with 410, no Retry-After: {[c for c, _ in codes]}")
        rx.post_json("/control", {"delay_ms": 400})
        t = time.monotonic()
        st, _, _ = rx.deliver("msg_10", body)
        took = time.monotonic() - t
        check(st == 200 and took >= 0.4, f"delay_ms 400: answered after {took:.2f} s")
        ctl = rx.post_json("/control", {"reset": True})
        t = time.monotonic()
        rx.deliver("msg_11", body)
        took = time.monotonic() - t
        check(ctl["delay_ms"] == 0 and ctl["fail"] == 0 and took < 0.4, f"reset: {ctl}, answered in {took:.2f} s")

        first = rx.deliveries()[0]
        replay = {"headers": {"Webhook-Id": first["id"], "Webhook-Timestamp": first["timestamp"],
                              "Webhook-Signature": first["signature"]}, "body": first["raw_body"]}
        r = rx.post_json("/replay", {**replay, "now_offset_secs": 600})
        check(r == {"verified": False, "error": "Message timestamp too old"}, f"/replay 600 s later: {r}")
        r = rx.post_json("/replay", {**replay, "now_offset_secs": 0})
        check(r == {"verified": True, "error": None}, f"/replay now: {r}")
        r = rx.post_json("/replay", {**replay, "now_offset_secs": -600})
        check(r == {"verified": False, "error": "Message timestamp too new"}, f"/replay 600 s earlier: {r}")
        r = rx.post_json("/replay", {**replay, "now_offset_secs": 240})
        check(r["verified"], f"/replay 240 s later (inside the tolerance): {r}")
        st, _, d = rx.deliver("msg_12", body)
        check(d["verified"], "after the replays the clock is the real one again")

        n = len(rx.deliveries())
        port = rx.port
        rc = rx.kill()
        check(rc == -signal.SIGKILL, f"killed by PID: {rc}")
        rx = Receiver(log, port=port)
        receivers.append(rx)
        check(rx.port == port and len(rx.deliveries()) == n, f"restart on port {port}: {len(rx.deliveries())} of {n} records kept")
        st, _, d = rx.deliver("msg_1", body)
        check(st == 200 and d["duplicate"], "after restart: msg_1 again is still a duplicate")
        with open(log) as f:
            lines = [json.loads(line) for line in f]
        check(len(lines) == n + 1 and lines[-1]["id"] == "msg_1", f"the log has {len(lines)} lines")
        check(rx.kill() == -signal.SIGKILL, "killed by PID")
    finally:
        for r in receivers:
            r.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - T0:.2f} s; {len(FAILURES)} failed")
    for f in FAILURES:
        print("  FAILED:", f)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
