"""Self-test of tests/support/xqueue_server.py, from a grader's side (not part of CI).

A pure-Python pull client (requests) that behaves like xqueue-watcher's client: GET
/xqueue/login/ for the csrftoken cookie, POST username/password with X-CSRFToken and Referer,
read the (rotated) cookie again, poll get_submission?queue_name=notebooks, fetch the file URL,
answer put_result {xqueue_header: the header string as received, xqueue_body: json.dumps(reply)}.
It starts the server on a fresh database, checks edX's answers (scores, pull keys, the lease,
errors), the control routes, and a restart on the same database.

usage: $XQUEUE_VENV/bin/python tests/support/xqueue_selftest.py [-v]
       (the venv of scripts/setup-xqueue.sh: it has requests). -v prints each wire exchange.
Exit status 0 when every check passed; prints the time each step took.
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

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE = "notebooks"
COURSE = "course-v1:OtterX+XQ+test"
FAILURES = []
T0 = time.monotonic()
VERBOSE = "-v" in sys.argv
NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def step(name, started):
    print(f"  [{time.monotonic() - T0:6.2f} s] {name}: {time.monotonic() - started:.2f} s", flush=True)


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def show(label, r):
    if VERBOSE:
        print(f"    {label}: {r.request.method} {r.request.url} -> {r.status_code} {r.text[:300]!r}")


def body_of(r):
    try:
        return r.json()
    except ValueError:
        return r.text


class Server:
    def __init__(self, db, port=0, users="grader:secret"):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "xqueue_server.py"), "--port", str(port), "--db", db,
             "--users", users],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("XQUEUE_PORT="):
            self.proc.kill()
            sys.exit(f"server did not start (first line {line!r}, exit {self.proc.wait()})")
        SERVERS.append(self)
        self.port = int(line.split("=", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "killed after 10 s"

    def submit(self, student, item, points=5, file=True, grader="hw1/grader.py", answer=""):
        body = {
            "queue": QUEUE, "student": student, "course_id": COURSE,
            "item_id": f"block-v1:OtterX+XQ+test+type@problem+block@{item}", "points_possible": points,
            "grader_payload": {"grader": grader, "assignment": item},
            "file": {"name": "sub.ipynb", "content_b64": base64.b64encode(NOTEBOOK).decode()} if file else None,
            "answer": answer,
        }
        r = requests.post(self.base + "/_submit", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def results(self):
        return {row["submission_id"]: row for row in requests.get(self.base + "/_results", timeout=30).json()}

    def control(self, route, data=""):
        return requests.post(self.base + route, data=data, timeout=30).json()

    def stats(self):
        return requests.get(self.base + "/_stats", timeout=30).json()


SERVERS = []


class Watcher:
    """xqueue-watcher's client, in the same steps."""

    def __init__(self, base, username="grader", password="secret"):
        self.base, self.username, self.password = base, username, password
        self.session = requests.Session()

    def url(self, route):
        return f"{self.base}/xqueue/{route}/"

    def csrf(self):
        return self.session.cookies.get("csrftoken", "")

    def login(self, password=None):
        self.session.cookies.clear()
        r = self.session.get(self.url("login"), timeout=5)
        show("login GET", r)
        before = self.csrf()
        r = self.session.post(
            self.url("login"),
            data={"username": self.username, "password": self.password if password is None else password},
            headers={"X-CSRFToken": before, "Referer": self.url("login")},
            timeout=5, allow_redirects=False,
        )
        show("login POST", r)
        self.rotated = bool(before) and self.csrf() != before
        return r

    def get_submission(self, queue=QUEUE):
        r = self.session.get(self.url("get_submission"), params={"queue_name": queue}, timeout=5,
                             allow_redirects=False)
        show("get_submission", r)
        return r

    def pull(self):
        """(header string, body dict, files dict) or None when the queue is empty."""
        r = self.get_submission()
        if r.status_code != 200 or r.json().get("return_code") != 0:
            return None
        content = json.loads(r.json()["content"])
        return content["xqueue_header"], json.loads(content["xqueue_body"]), json.loads(content["xqueue_files"])

    def put_result(self, header, reply, csrf=True):
        headers = {"X-CSRFToken": self.csrf(), "Referer": self.url("login")} if csrf else {}
        data = {"xqueue_header": header, "xqueue_body": reply if isinstance(reply, str) else json.dumps(reply)}
        r = self.session.post(self.url("put_result"), data=data, headers=headers, timeout=5,
                              allow_redirects=False)
        show("put_result", r)
        return r


def with_key(header, key=None, submission_id=None):
    h = json.loads(header)
    if key is not None:
        h["submission_key"] = key
    if submission_id is not None:
        h["submission_id"] = submission_id
    return json.dumps(h)


def main():
    tmp = tempfile.mkdtemp(prefix="xqueue-selftest-")
    db = os.path.join(tmp, "xqueue.sqlite")
    good = {"correct": True, "score": 0.6, "msg": "<div>ok</div>"}
    try:
        t = time.monotonic()
        srv = Server(db)
        step("server start (fresh db, migrations)", t)

        # --- login, as xqueue-watcher does
        t = time.monotonic()
        anon = Watcher(srv.base)
        r = anon.get_submission()
        check(r.status_code == 403, f"not logged in: get_submission {r.status_code} {body_of(r)}")
        w = Watcher(srv.base)
        r = w.login(password="wrong")
        check(r.status_code == 401 and r.json() == {"return_code": 1, "content": "Incorrect login credentials"},
              f"wrong password: {r.status_code} {body_of(r)}")
        r = w.session.post(w.url("login"), data={"username": "grader"}, timeout=5)
        check(r.status_code == 400 and r.json().get("content") == "Insufficient login info",
              f"login without password: {r.status_code} {body_of(r)}")
        r = w.login()
        check(r.status_code == 200 and r.json() == {"return_code": 0, "content": "Logged in"},
              f"login: {r.status_code} {body_of(r)}")
        check(w.rotated, "login rotates the csrftoken cookie (read it again after logging in)")
        nocsrf = requests.Session()
        nocsrf.get(w.url("login"), timeout=5)
        r = nocsrf.post(w.url("login"), data={"username": "grader", "password": "secret"}, timeout=5)
        check(r.status_code == 200, f"login POST without X-CSRFToken (anonymous: DRF checks no CSRF): {r.status_code}")
        r = w.session.get(f"{srv.base}/xqueue/get_submission", params={"queue_name": QUEUE}, timeout=5,
                          allow_redirects=False)
        check(r.status_code == 301 and r.headers.get("Location", "").startswith("/xqueue/get_submission/"),
              f"no trailing slash: {r.status_code} -> {r.headers.get('Location')}")
        step("login checks", t)

        # --- empty queue, bad requests
        t = time.monotonic()
        r = w.get_submission()
        check(r.status_code == 200 and r.json() == {"return_code": 1, "content": f"Queue '{QUEUE}' is empty"},
              f"empty queue: {r.status_code} {body_of(r)}")
        r = w.session.get(w.url("get_submission"), timeout=5)
        check(r.status_code == 400 and r.json()["return_code"] == 1, f"no queue_name: {r.status_code} {body_of(r)}")
        r = w.session.post(w.url("status"), headers={"X-CSRFToken": w.csrf()}, timeout=5)
        check(r.status_code == 200, f"status: {r.status_code} {r.headers.get('Content-Type')} {r.text!r}")
        step("empty queue, bad requests", t)

        # --- one notebook, pulled, file fetched, answered: 0.6 of 5 points
        t = time.monotonic()
        sub = srv.submit("anon-1", "hw1")
        pulled = w.pull()
        check(pulled is not None, "a submitted notebook is served by get_submission")
        header, body, files = pulled
        h = json.loads(header)
        check(h["submission_id"] == sub["submission_id"] and len(h["submission_key"]) == 36,
              f"xqueue_header: {header}")
        check(json.loads(body["grader_payload"]) == {"grader": "hw1/grader.py"},
              f"grader_payload keeps only the grader key: {body['grader_payload']}")
        info = json.loads(body["student_info"])
        check(info["anonymous_student_id"] == "anon-1" and info["random_seed"] == 1
              and info["submission_time"].isdigit(), f"student_info: {body['student_info']}")
        check(list(files) == ["sub.ipynb"] and files == sub["files"], f"xqueue_files: {files}")
        f = w.session.get(files["sub.ipynb"], timeout=5)
        check(f.status_code == 200 and f.content == NOTEBOOK, f"file URL serves the notebook ({f.status_code}, {len(f.content)} bytes)")
        r = w.get_submission()
        check(r.json()["return_code"] == 1, "a pulled submission is not served again within the lease")
        row = srv.results()[sub["submission_id"]]
        check(row["status"] == "pulled" and row["has_pullkey"], f"/_results: pulled, pull key set ({row['status']})")
        step("submit, pull, fetch file", t)

        t = time.monotonic()
        r = w.put_result(with_key(header, key="0" * 36), good)
        check(r.status_code == 403 and r.json() == {"return_code": 1, "content": "Incorrect key for submission"},
              f"wrong pull key: {r.status_code} {body_of(r)}")
        r = w.put_result(with_key(header, submission_id=999999), good)
        check(r.status_code == 404 and r.json()["content"] == "Submission does not exist",
              f"unknown submission id: {r.status_code} {body_of(r)}")
        r = w.put_result("not json", good)
        check(r.status_code == 400 and r.json()["content"] == "Incorrect reply format",
              f"header not JSON: {r.status_code} {body_of(r)}")
        r = w.put_result(header, "not json")
        check(r.status_code == 400, f"body not JSON: {r.status_code} {body_of(r)}")
        r = w.put_result(header, good, csrf=False)
        check(r.status_code == 403 and "CSRF" in r.text, f"put_result without X-CSRFToken: {r.status_code} {body_of(r)}")
        r = w.put_result(header, good)
        check(r.status_code == 200 and r.json() == {"return_code": 0, "content": ""},
              f"put_result: {r.status_code} {body_of(r)}")
        row = srv.results()[sub["submission_id"]]
        check(row["status"] == "retired", f"status retired ({row['status']})")
        check(row["score"] and row["score"]["points_earned"] == 3 and row["score"]["points_possible"] == 5,
              f"score 0.6 on a 5-point problem stored as 3 of 5: {row['score']}")
        check(row["item_score"] == row["score"], "get_score of the student item gives the same score")
        check(row["reply"] == good and row["grader_reply"] == json.dumps(good), "the xqueue_body is stored verbatim")
        ev = row["events"]
        check(len(ev) == 1 and ev[0]["points_earned"] == 3 and ev[0]["score_msg"] == json.dumps(good),
              f"one EXTERNAL_GRADER_SCORE_SUBMITTED event, points_earned 3, score_msg = the xqueue_body: {ev}")
        step("put_result checks", t)

        t = time.monotonic()
        r = w.put_result(header, {"correct": False, "score": 0.2, "msg": "<p>again</p>"})
        check(r.status_code == 500 and "text/html" in r.headers.get("Content-Type", ""),
              f"put_result again on a retired submission: {r.status_code} {r.headers.get('Content-Type')} {r.text[:60]!r}")
        row = srv.results()[sub["submission_id"]]
        check(row["status"] == "retired" and row["score"]["points_earned"] == 3 and len(row["events"]) == 1
              and row["num_failures"] == 0, "...and nothing of the second answer is kept (rolled back)")
        step("put_result twice", t)

        # --- the lease
        t = time.monotonic()
        sub2 = srv.submit("anon-2", "hw1")
        header2, _, _ = w.pull()
        key1 = json.loads(header2)["submission_key"]
        r = w.get_submission()
        check(r.json()["return_code"] == 1, "within the lease: queue looks empty")
        exp = srv.control("/_expire")
        check(exp == {"expired": 1}, f"/_expire: {exp}")
        again = w.pull()
        key2 = json.loads(again[0])["submission_key"] if again else None
        check(again is not None and json.loads(again[0])["submission_id"] == sub2["submission_id"],
              "after the lease: the same submission is served again")
        check(key2 == key1, f"...with the SAME pull key (no fencing): {key1} / {key2}")
        third = w.pull()
        check(third is not None and json.loads(third[0])["submission_key"] == key1,
              "...and again on every poll (status_time is not refreshed on a re-serve)")
        r = w.put_result(header2, {"correct": True, "score": 1.0, "msg": "<p>late</p>"})
        check(r.status_code == 200, f"the first puller's answer is accepted after expiry: {r.status_code}")
        r = w.put_result(again[0], {"correct": True, "score": 1.0, "msg": "<p>second puller</p>"})
        check(r.status_code == 500, f"the second puller's answer (same key) then gets {r.status_code}")
        row = srv.results()[sub2["submission_id"]]
        check(row["score"]["points_earned"] == 5 and row["reply"]["msg"] == "<p>late</p>", "first answer wins")
        step("lease expiry", t)

        # --- scaling and odd replies
        t = time.monotonic()
        cases = [
            ("not XML", 5, {"correct": True, "score": 0.4, "msg": "<div>unclosed & a < b"}, 2, "retired"),
            ("score 0.5 of 1 point", 1, {"correct": False, "score": 0.5, "msg": "<p/>"}, 0, "retired"),
            ("score 1.5 (over 1)", 4, {"correct": True, "score": 1.5, "msg": "<p/>"}, 6, "retired"),
            ("score as points (3 of 5)", 5, {"correct": True, "score": 3, "msg": "<p/>"}, 15, "retired"),
            ("no score key", 5, {"correct": True, "msg": "<p/>"}, None, "retry"),
            ("score a string", 5, {"correct": True, "score": "0.6", "msg": "<p/>"}, None, "retry"),
            ("negative score", 5, {"correct": False, "score": -0.2, "msg": "<p/>"}, None, "retry"),
        ]
        for n, (label, points, reply, expect, status) in enumerate(cases):
            s = srv.submit(f"anon-case-{n}", f"case{n}", points=points, file=False, answer=f"answer {n}")
            hdr, bdy, fl = w.pull()
            check(json.loads(hdr)["submission_id"] == s["submission_id"] and fl == {}
                  and bdy["student_response"] == f"answer {n}", f"{label}: pulled (no file: xqueue_files {{}})")
            r = w.put_result(hdr, reply)
            row = srv.results()[s["submission_id"]]
            got = row["score"]["points_earned"] if row["score"] else None
            check(r.status_code == 200 and r.json()["return_code"] == 0 and row["status"] == status and got == expect,
                  f"{label}: HTTP {r.status_code} code {r.json()['return_code']}, status {row['status']},"
                  f" points {got} of {points} (num_failures {row['num_failures']})")
            if status != "retry":
                continue
            # A row in retry is served again at once (before older pending rows: the queue is
            # ordered by status_time, which the failure just set), with a NEW pull key.
            hdr2, _, _ = w.pull()
            h1, h2 = json.loads(hdr), json.loads(hdr2)
            check(h2["submission_id"] == h1["submission_id"] and h2["submission_key"] != h1["submission_key"],
                  f"{label}: served again at once, with a new pull key")
            r = w.put_result(hdr, good)
            check(r.status_code == 403, f"{label}: the old pull key is then refused ({r.status_code})")
            r = w.put_result(hdr2, good)
            row = srv.results()[s["submission_id"]]
            check(r.status_code == 200 and row["status"] == "retired" and row["score"]["points_earned"] == 3,
                  f"{label}: a good answer with the new key retires it ({row['status']}, {row['score']})")
        # Five failures in a row: failed, never served again.
        s = srv.submit("anon-fail", "fail", file=False)
        for i in range(5):
            hdr, _, _ = w.pull()
            w.put_result(hdr, {"correct": False, "msg": "<p/>"})
        row = srv.results()[s["submission_id"]]
        check(row["status"] == "failed" and row["num_failures"] == 5,
              f"5 answers without a score: {row['status']}, num_failures {row['num_failures']}")
        check(w.pull() is None, "...and a failed row is not served again")
        step("scaling and odd replies", t)

        # --- failure injection
        t = time.monotonic()
        check(srv.control("/_mode", "500-times:2") == {"mode": "500-times:2"}, "/_mode 500-times:2")
        codes = [w.get_submission().status_code for _ in range(3)]
        check(codes == [500, 500, 200], f"500-times:2 then edX again: {codes}")
        srv.control("/_mode", "503")
        r = w.get_submission()
        check(r.status_code == 503 and r.headers.get("Retry-After") == "1", f"503 mode: {r.status_code}")
        srv.control("/_mode", "down")
        try:
            w.get_submission()
            closed = False
        except requests.ConnectionError as e:
            closed = True
            print(f"    down: {type(e).__name__}: {str(e)[:120]}")
        check(closed, "down mode: the connection is closed without an answer")
        srv.control("/_mode", "ok")
        check(w.get_submission().status_code == 200, "ok again")
        stats = srv.stats()["routes"]
        gs = stats.get("GET /xqueue/get_submission/", {})
        check(gs.get("500") == 2 and gs.get("503") == 1 and gs.get("closed") == 1,
              f"/_stats counts them: {gs}")
        pr = stats.get("POST /xqueue/put_result/", {})
        check(pr.get("403", 0) >= 2 and pr.get("500") == 2, f"/_stats put_result: {pr}")
        step("failure injection", t)

        # --- restart on the same db and port
        t = time.monotonic()
        sub3 = srv.submit("anon-3", "hw2")
        header3, _, files3 = w.pull()
        before = srv.results()
        port = srv.port
        rc = srv.stop()
        check(rc == 0, f"SIGTERM: exit {rc}")
        srv = Server(db, port=port)
        step("restart on the same db and port", t)
        after = srv.results()
        check(after == before, f"after restart: the same {len(after)} rows, statuses, scores, replies")
        r = w.put_result(header3, good)
        check(r.status_code == 200, f"after restart: the old session and pull key still work ({r.status_code})")
        check(srv.results()[sub3["submission_id"]]["score"]["points_earned"] == 3, "...and the score lands")
        f = w.session.get(files3["sub.ipynb"], timeout=5)
        check(f.status_code == 200 and f.content == NOTEBOOK, "after restart: the file URL still serves the notebook")

        # --- logout
        r = w.session.post(w.url("logout"), headers={"X-CSRFToken": w.csrf()}, timeout=5)
        check(r.status_code == 200 and r.json() == {"return_code": 0, "content": "Goodbye"}, f"logout: {r.status_code} {body_of(r)}")
        r = w.get_submission()
        check(r.status_code == 403, f"after logout: get_submission {r.status_code}")
        rc = srv.stop()
        check(rc == 0, f"SIGTERM: exit {rc}")
    finally:
        for s in SERVERS:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - T0:.2f} s; {len(FAILURES)} failed")
    for f in FAILURES:
        print("  FAILED:", f)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
