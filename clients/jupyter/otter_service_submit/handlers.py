"""Handlers of the server extension: the page's Submit button talks to these, and these
talk to otter-service with this server's JupyterHub token (the browser never sees it).

    POST {base_url}otter-service/submit               {"path": "<contents API path>"}
    GET  {base_url}otter-service/submissions/<id>
    GET  {base_url}otter-service/calendar/<course>/<section>/<assignment>
"""

from __future__ import annotations

import email.utils
import json
import os
import time
import urllib.parse

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Float, Unicode, default
from traitlets.config import Configurable

NOT_REACHABLE = (
    "Could not reach the grading service. Your notebook is saved; try again in a few "
    "minutes, and tell course staff if this goes on."
)
BUSY = "The grading service is busy right now. Your notebook is saved; try again later."


class OtterServiceSubmit(Configurable):
    """Where the grading service is (`c.OtterServiceSubmit.*` in jupyter_server_config)."""

    service_url = Unicode(
        help="URL of otter-service, e.g. https://hub.example.org/services/otter_grade/ "
        "(default: $OTTER_SERVICE_URL). A missing trailing slash is added.",
    ).tag(config=True)

    service_name = Unicode(
        help="The service's name in JupyterHub, used in the sentence telling staff which "
        "scope to grant (default: $OTTER_SERVICE_NAME or otter_grade).",
    ).tag(config=True)

    request_timeout = Float(
        60.0, help="Seconds to wait for the grading service to answer."
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("OTTER_SERVICE_URL", "")

    @default("service_name")
    def _default_service_name(self) -> str:
        return os.environ.get("OTTER_SERVICE_NAME", "") or "otter_grade"

    def base_url(self) -> str:
        """The service URL ending with "/" ("" when not configured)."""
        url = self.service_url.strip()
        if url and not url.endswith("/"):
            url += "/"
        return url


def _ids_from_metadata(metadata: object) -> tuple[dict[str, str], list[str]]:
    """course, section, assignment from `metadata.otter_service.*`, else the top-level
    `course`, `section`, `lab` or `assignment` (the same rule as src/format.ts)."""
    top = metadata if isinstance(metadata, dict) else {}
    own = top.get("otter_service")
    own = own if isinstance(own, dict) else {}

    def pick(*values: object) -> str | None:
        for value in values:
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                return str(value)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    found = {
        "course": pick(own.get("course"), top.get("course")),
        "section": pick(own.get("section"), top.get("section")),
        "assignment": pick(own.get("assignment"), top.get("lab"), top.get("assignment")),
    }
    missing = [name for name, value in found.items() if value is None]
    return {k: v for k, v in found.items() if v is not None}, missing


def _join_or(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def missing_metadata_sentence(missing: list[str]) -> str:
    return (
        f"This notebook is not set up for grading: its metadata has no {_join_or(missing)}. "
        "Ask course staff for the assignment notebook."
    )


def _retry_after_seconds(header: str | None) -> int | None:
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return int(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0, int(when.timestamp() - time.time() + 0.999))


class _OtterHandler(APIHandler):
    """Shared by both handlers: configuration checks, forwarding, mapping answers."""

    def initialize(self, otter: OtterServiceSubmit) -> None:
        self.otter = otter

    def _send(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def _not_configured(self) -> str | None:
        """The sentence saying which setting is missing, or None when all are set."""
        if not self.otter.base_url():
            return (
                "This Jupyter server is not set up for grading: the grading service's "
                "address is not configured (set OTTER_SERVICE_URL in the single-user "
                "server's environment, or c.OtterServiceSubmit.service_url). Tell course "
                "staff."
            )
        if not os.environ.get("JUPYTERHUB_API_TOKEN"):
            return (
                "This Jupyter server is not set up for grading: it has no "
                "JUPYTERHUB_API_TOKEN (JupyterHub sets it when it starts the server; "
                "grading works only in servers started by the Hub). Tell course staff."
            )
        return None

    async def _forward(
        self, method: str, url: str, body: bytes | None = None, headers: dict | None = None
    ) -> None:
        """Sends one request to the service and answers the page with the mapped result."""
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        all_headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        request = HTTPRequest(
            url,
            method=method,
            body=body,
            headers=all_headers,
            connect_timeout=min(20.0, self.otter.request_timeout),
            request_timeout=self.otter.request_timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except Exception as error:  # timeouts, refused connections, DNS, TLS
            self.log.warning(
                "otter-service-submit: %s %s failed: %s", method, url, _describe(error)
            )
            self._send(502, {"error": NOT_REACHABLE})
            return
        self._map(method, url, response)

    def _map(self, method: str, url: str, response) -> None:
        code = response.code
        data = None
        if response.body:
            try:
                data = json.loads(response.body)
            except ValueError:
                data = None
        service_error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(service_error, str) or not service_error.strip():
            service_error = None

        if 200 <= code < 300 and isinstance(data, dict):
            self._send(code, data)
        elif code in (401, 403):
            self.log.warning(
                "otter-service-submit: %s %s: the service answered %s (token not accepted)",
                method,
                url,
                code,
            )
            name = self.otter.service_name
            self._send(
                403,
                {
                    "error": "The grading service did not accept this server's JupyterHub "
                    "token. Course staff: add the scope "
                    f"access:services!service={name} to both the user and the server "
                    "roles in JupyterHub's load_roles, then restart this server."
                },
            )
        elif code in (429, 503) and service_error is None:
            # Not the service's own answer: JupyterHub's proxy says the service is down.
            self.log.warning(
                "otter-service-submit: %s %s: %s without the service's error (service down?)",
                method,
                url,
                code,
            )
            self._send(502, {"error": NOT_REACHABLE})
        elif code in (429, 503):
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                self.set_header("Retry-After", str(retry_after))
            self._send(code, {"error": service_error or BUSY, "retry_after": retry_after})
        elif 400 <= code < 500:
            self._send(
                code,
                {
                    "error": service_error
                    or f"The grading service refused this request (HTTP {code})."
                },
            )
        else:
            # 5xx, 599 (tornado's own failures), redirects, or a 2xx without JSON.
            cause = service_error or (str(response.error) if response.error else "")
            self.log.warning(
                "otter-service-submit: %s %s: unusable answer %s %s",
                method,
                url,
                code,
                cause[:300],
            )
            self._send(502, {"error": NOT_REACHABLE})


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]


class SubmitHandler(_OtterHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            request = json.loads(self.request.body or b"{}")
        except ValueError:
            request = None
        path = request.get("path") if isinstance(request, dict) else None
        if not isinstance(path, str) or not path.strip():
            self._send(400, {"error": 'The request needs a JSON body {"path": "<notebook>"}.'})
            return
        path = path.strip().lstrip("/")

        try:
            model = await ensure_async(
                self.contents_manager.get(path, content=True, type="notebook")
            )
        except tornado.web.HTTPError as error:
            if error.status_code == 404:
                self._send(404, {"error": f"There is no notebook at {path}."})
            else:
                self._send(
                    error.status_code,
                    {"error": f"Could not read {path} as a notebook: {error.log_message}"},
                )
            return

        nb = model.get("content")
        _, missing = _ids_from_metadata(nb.get("metadata") if isinstance(nb, dict) else None)
        if missing:
            self._send(400, {"error": missing_metadata_sentence(missing)})
            return

        problem = self._not_configured()
        if problem is not None:
            self.log.warning("otter-service-submit: %s", problem)
            self._send(500, {"error": problem})
            return

        # HTTP header values must be latin-1; a path with other characters is sent
        # percent-encoded.
        header_path = path if path.isascii() and path.isprintable() else urllib.parse.quote(path)
        await self._forward(
            "POST",
            self.otter.base_url(),
            body=json.dumps({"nb": nb}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Otter-Notebook-Path": header_path,
            },
        )


class SubmissionHandler(_OtterHandler):
    @tornado.web.authenticated
    async def get(self, submission_id: str) -> None:
        problem = self._not_configured()
        if problem is not None:
            self._send(500, {"error": problem})
            return
        await self._forward("GET", f"{self.otter.base_url()}submissions/{int(submission_id)}")


# A course, section or assignment name as otter-service accepts one (no separators).
_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"


class CalendarHandler(_OtterHandler):
    """The student's due date and current credit for an assignment, shown by the Submit
    panel before the notebook is sent."""

    @tornado.web.authenticated
    async def get(self, course: str, section: str, assignment: str) -> None:
        problem = self._not_configured()
        if problem is not None:
            self._send(500, {"error": problem})
            return
        names = "/".join(urllib.parse.quote(n, safe="") for n in (course, section, assignment))
        await self._forward("GET", f"{self.otter.base_url()}calendar/{names}")


def setup_handlers(server_app) -> None:
    web_app = server_app.web_app
    otter = OtterServiceSubmit(parent=server_app)
    web_app.settings["otter_service_submit"] = otter
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base_url, "otter-service", "submit"), SubmitHandler, {"otter": otter}),
            (
                url_path_join(base_url, "otter-service", r"submissions/(\d+)"),
                SubmissionHandler,
                {"otter": otter},
            ),
            (
                url_path_join(base_url, "otter-service", rf"calendar/{_NAME}/{_NAME}/{_NAME}"),
                CalendarHandler,
                {"otter": otter},
            ),
        ],
    )
    if otter.base_url():
        server_app.log.info("otter-service-submit: submitting to %s", otter.base_url())
    else:
        server_app.log.warning(
            "otter-service-submit: no grading service configured (OTTER_SERVICE_URL)"
        )
