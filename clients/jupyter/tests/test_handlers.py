"""The server extension against a fake grading service on 127.0.0.1 (a test double: it
records what it receives and answers what each test tells it to)."""

import json

import nbformat
import pytest
import tornado.httpserver
import tornado.testing
import tornado.web

TOKEN = "hub-token-4b1d-never-shown"

SET_UP = {"otter_service": {"course": "8x", "section": "1", "assignment": "lab01"}}

VIEW = {
    "id": 12,
    "user": "penny",
    "course": "8x",
    "section": "1",
    "assignment": "lab01",
    "received_at": "2026-11-24T13:40:00.123Z",
    "state": "queued",
    "message": None,
    "url": "http://hub/services/otter_grade/submissions/12",
    "queue": {"position": 3, "expected_wait_secs": 12.5},
    "grade": None,
}


class FakeService:
    """What the fake received, and the answer it gives next: (status, body, headers)."""

    def __init__(self):
        self.received = []
        self.answer = (202, {**VIEW, "submission_id": 12, "status_url": VIEW["url"]}, {})
        self.server = None
        self.port = None


class _Recorder(tornado.web.RequestHandler):
    def initialize(self, fake):
        self.fake = fake

    def _reply(self):
        self.fake.received.append(
            {
                "method": self.request.method,
                "path": self.request.path,
                "headers": dict(self.request.headers),
                "body": self.request.body,
            }
        )
        status, body, headers = self.fake.answer
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def post(self, *args):
        self._reply()

    def get(self, *args):
        self._reply()


@pytest.fixture
def fake_service(jp_asyncio_loop, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    fake = FakeService()
    sock, fake.port = tornado.testing.bind_unused_port()  # 127.0.0.1, port 0
    app = tornado.web.Application(
        [(r"/services/otter_grade/(.*)", _Recorder, {"fake": fake})]
    )

    async def start():
        server = tornado.httpserver.HTTPServer(app)
        server.add_socket(sock)
        return server

    fake.server = jp_asyncio_loop.run_until_complete(start())
    yield fake
    fake.server.stop()


@pytest.fixture
def jp_server_config(fake_service):
    return {
        "ServerApp": {"jpserver_extensions": {"otter_service_submit": True}},
        "OtterServiceSubmit": {
            # No trailing slash on purpose: the extension adds it.
            "service_url": f"http://127.0.0.1:{fake_service.port}/services/otter_grade",
        },
    }


def write_notebook(root, name, metadata):
    nb = nbformat.v4.new_notebook(metadata=metadata)
    nb.cells.append(nbformat.v4.new_code_cell("x = 6 * 7"))
    (root / name).write_text(nbformat.writes(nb), encoding="utf-8")
    return nb


async def submit(jp_fetch, path):
    response = await jp_fetch(
        "otter-service",
        "submit",
        method="POST",
        body=json.dumps({"path": path}),
        raise_error=False,
    )
    body = response.body.decode()
    assert TOKEN not in body
    return response.code, json.loads(body), response


async def test_forwards_notebook_with_token(jp_fetch, jp_root_dir, fake_service):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert code == 202
    assert body["submission_id"] == 12
    assert body["queue"] == {"position": 3, "expected_wait_secs": 12.5}

    assert len(fake_service.received) == 1
    sent = fake_service.received[0]
    assert sent["method"] == "POST"
    assert sent["path"] == "/services/otter_grade/"
    assert sent["headers"]["Authorization"] == f"token {TOKEN}"
    assert sent["headers"]["Accept"] == "application/json"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["X-Otter-Notebook-Path"] == "lab01.ipynb"
    payload = json.loads(sent["body"])
    assert list(payload) == ["nb"]
    assert payload["nb"]["metadata"]["otter_service"]["assignment"] == "lab01"
    assert payload["nb"]["cells"][0]["source"] == "x = 6 * 7"
    nbformat.validate(nbformat.from_dict(payload["nb"]))


async def test_top_level_metadata_is_enough(jp_fetch, jp_root_dir, fake_service):
    (jp_root_dir / "sub").mkdir()
    write_notebook(jp_root_dir / "sub", "hw.ipynb", {"course": "8x", "section": 1, "lab": "l2"})
    code, _, _ = await submit(jp_fetch, "sub/hw.ipynb")
    assert code == 202
    assert fake_service.received[0]["headers"]["X-Otter-Notebook-Path"] == "sub/hw.ipynb"


@pytest.mark.parametrize(
    "metadata, missing",
    [
        ({}, "course, section or assignment"),
        ({"otter_service": {"course": "8x", "section": "1"}}, "assignment"),
        ({"course": "8x", "lab": "lab01"}, "section"),
    ],
)
async def test_missing_metadata_sends_nothing(
    jp_fetch, jp_root_dir, fake_service, metadata, missing
):
    write_notebook(jp_root_dir, "plain.ipynb", metadata)
    code, body, _ = await submit(jp_fetch, "plain.ipynb")
    assert code == 400
    assert body["error"] == (
        f"This notebook is not set up for grading: its metadata has no {missing}. "
        "Ask course staff for the assignment notebook."
    )
    assert fake_service.received == []


async def test_missing_notebook_is_404(jp_fetch, fake_service):
    code, body, _ = await submit(jp_fetch, "nope.ipynb")
    assert code == 404
    assert "nope.ipynb" in body["error"]
    assert fake_service.received == []


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_token_names_the_scope(jp_fetch, jp_root_dir, fake_service, status):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.answer = (status, {"error": f"no access ({TOKEN})", "status": status}, {})
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert code == 403
    assert body["error"] == (
        "The grading service did not accept this server's JupyterHub token. Course staff: "
        "add the scope access:services!service=otter_grade to both the user and the "
        "server roles in JupyterHub's load_roles, then restart this server."
    )


@pytest.mark.parametrize("status", [503, 429])
async def test_busy_passes_retry_after(jp_fetch, jp_root_dir, fake_service, status):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.answer = (
        status,
        {"error": "The grading queue is full; try again in 30 seconds.", "status": status},
        {"Retry-After": "30"},
    )
    code, body, response = await submit(jp_fetch, "lab01.ipynb")
    assert code == status
    assert body == {
        "error": "The grading queue is full; try again in 30 seconds.",
        "retry_after": 30,
    }
    assert response.headers["Retry-After"] == "30"


async def test_busy_without_retry_after(jp_fetch, jp_root_dir, fake_service):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.answer = (503, {"error": "Busy.", "status": 503}, {})
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert (code, body) == (503, {"error": "Busy.", "retry_after": None})


async def test_other_client_errors_pass_the_sentence(jp_fetch, jp_root_dir, fake_service):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.answer = (
        422,
        {"error": "lab99 is not an assignment of course 8x.", "status": 422},
        {},
    )
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert (code, body) == (422, {"error": "lab99 is not an assignment of course 8x."})


UNREACHABLE = (
    "Could not reach the grading service. Your notebook is saved; try again in a few "
    "minutes, and tell course staff if this goes on."
)


async def test_service_error_is_502(jp_fetch, jp_root_dir, fake_service):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.answer = (500, {"error": "database is locked", "status": 500}, {})
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert (code, body) == (502, {"error": UNREACHABLE})


async def test_proxy_503_for_a_stopped_service_is_502(jp_fetch, jp_root_dir, fake_service):
    # JupyterHub's proxy answers 503 with its own page when the service is not running.
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.answer = (503, "<html>503: Service Unavailable</html>", {})
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert (code, body) == (502, {"error": UNREACHABLE})


async def test_connection_refused_is_502(jp_fetch, jp_root_dir, fake_service, caplog):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    fake_service.server.stop()  # closes the listening socket: connections are refused
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert (code, body) == (502, {"error": UNREACHABLE})
    assert TOKEN not in caplog.text


async def test_no_token_contacts_nothing(jp_fetch, jp_root_dir, fake_service, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert code == 500
    assert "not set up for grading" in body["error"]
    assert "JUPYTERHUB_API_TOKEN" in body["error"]
    assert fake_service.received == []


async def test_no_service_url_contacts_nothing(
    jp_fetch, jp_serverapp, jp_root_dir, fake_service
):
    jp_serverapp.web_app.settings["otter_service_submit"].service_url = ""
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    code, body, _ = await submit(jp_fetch, "lab01.ipynb")
    assert code == 500
    assert "OTTER_SERVICE_URL" in body["error"]
    assert fake_service.received == []


async def test_get_submission_passes_through(jp_fetch, fake_service):
    graded = {
        **VIEW,
        "state": "graded",
        "queue": None,
        "grade": {"status": "graded", "score": 3.0, "max_score": 5.0, "fraction": 0.6},
    }
    fake_service.answer = (200, graded, {})
    response = await jp_fetch("otter-service", "submissions", "12", raise_error=False)
    assert response.code == 200
    assert json.loads(response.body) == graded
    sent = fake_service.received[0]
    assert (sent["method"], sent["path"]) == ("GET", "/services/otter_grade/submissions/12")
    assert sent["headers"]["Authorization"] == f"token {TOKEN}"
    assert sent["headers"]["Accept"] == "application/json"
    assert TOKEN not in response.body.decode()


async def test_get_submission_maps_errors(jp_fetch, fake_service):
    fake_service.answer = (404, {"error": "There is no submission 99.", "status": 404}, {})
    response = await jp_fetch("otter-service", "submissions", "99", raise_error=False)
    assert (response.code, json.loads(response.body)) == (
        404,
        {"error": "There is no submission 99."},
    )
    fake_service.answer = (401, {"error": "who are you", "status": 401}, {})
    response = await jp_fetch("otter-service", "submissions", "99", raise_error=False)
    assert response.code == 403
    assert "load_roles" in json.loads(response.body)["error"]


async def test_submission_id_must_be_digits(jp_fetch, fake_service):
    response = await jp_fetch("otter-service", "submissions", "..%2Fadmin", raise_error=False)
    assert response.code == 404
    assert fake_service.received == []


async def test_needs_authentication(jp_fetch, jp_root_dir, fake_service):
    write_notebook(jp_root_dir, "lab01.ipynb", SET_UP)
    response = await jp_fetch(
        "otter-service",
        "submit",
        method="POST",
        body=json.dumps({"path": "lab01.ipynb"}),
        headers={"Authorization": ""},
        raise_error=False,
    )
    assert response.code == 403
    assert fake_service.received == []


async def test_calendar_passes_through(jp_fetch, fake_service):
    due = {"state": "late", "credit_now": 80.0, "sentence": "Late: a submission now earns 80% credit."}
    fake_service.answer = (200, due, {})
    response = await jp_fetch("otter-service", "calendar", "demo", "1", "lab01", raise_error=False)
    assert (response.code, json.loads(response.body)) == (200, due)
    sent = fake_service.received[0]
    assert (sent["method"], sent["path"]) == ("GET", "/services/otter_grade/calendar/demo/1/lab01")
    assert sent["headers"]["Authorization"] == f"token {TOKEN}"


async def test_calendar_names_cannot_walk_elsewhere(jp_fetch, fake_service):
    for bad in ["..%2Fstaff", "%2E%2E"]:
        response = await jp_fetch("otter-service", "calendar", "demo", "1", bad, raise_error=False)
        assert response.code == 404, bad
    assert fake_service.received == []
