"""The review web app (Starlette): the list, a trace page, labels, charts. A thin layer over the library.

Reading and filtering go through ``TraceIndex``, labels through ``curate.labels`` (written with the version they
were made from: a label from a version another reviewer replaced is answered 409), rows through the exporters. By
audience: ``params`` reads requests, ``state`` holds the index, ``views`` says what a trace page shows, and this
module routes and renders server-side HTML (Jinja2, autoescaped). The one trace log is fixed when the app is made;
no request ever names a file.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from ..curate.labels import Label
from ..errors import ConfigError, InvalidTraceError, LabelConflictError
from . import charts, views
from .config import ReviewConfig
from .evals import evals_page
from .params import BadRequest, parse_label_form, parse_list_params
from .security import CSRF_FIELD, CSRF_HEADER, MAX_FORM_BYTES, Guard, new_csrf_token, token_matches
from .state import PER_PAGE, ReviewState

HERE = Path(__file__).parent
STATIC_FILES = {"review.js": "text/javascript", "review.css": "text/css"}

__all__ = ["PER_PAGE", "ReviewConfig", "create_app", "mount_review"]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["score"] = lambda s: "—" if s is None else f"{s:.2f}"
    env.filters["pretty_json"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2)
    return env


def _when(value: float | datetime | None) -> str:
    if value is None:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _wants_json(request: Request) -> bool:
    return CSRF_HEADER in request.headers or "application/json" in request.headers.get("accept", "")


class Pages:
    """The app's pages over one ``ReviewState``: each handler parses, calls the library and renders."""

    def __init__(self, config: ReviewConfig, token: str):
        self.config = config
        self.state = ReviewState(config)
        self.env = _environment()
        self.token = token
        self.statics = {name: (HERE / "static" / name).read_bytes() for name in STATIC_FILES}
        self.started = int(time.time())
        for name in self.env.list_templates():  # compiled now, not by the first request (most of its time)
            self.env.get_template(name)

    def render(self, request: Request, name: str, status_code: int = 200, **context: object) -> HTMLResponse:
        context.update(
            base=_base(request),
            csrf=self.token,
            config=self.config,
            log_name=self.config.log_path.name,
            labeller=self.config.labeller or "",
            version=self.started,
        )
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})

    def error(self, request: Request, message: str, status_code: int = 400, **context: object) -> HTMLResponse:
        return self.render(request, "error.html", status_code=status_code, message=message, **context)

    def list_page(self, request: Request) -> Response:
        try:
            params = parse_list_params(request.query_params)
        except BadRequest as exc:
            return self.error(request, str(exc))
        index_state = self.state.refresh()
        return self.render(
            request,
            "list.html",
            params=params,
            page=self.state.page(params.query, params.page, index_state),
            facets=self.state.index.facets(),
            index_state=index_state,
            catching_up=self.state.catching_up,
            catch_up_error=self.state.catch_up_error,
        )

    def trace_page(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        try:
            params = parse_list_params(request.query_params)
        except BadRequest as exc:
            return self.error(request, str(exc))
        self.state.refresh()
        try:
            record = self.state.read(trace_id)
        except InvalidTraceError as exc:
            return self.error(request, f"This line of the log is not a valid trace: {exc}", 422)
        if record is None:
            return self.error(request, f"There is no trace {trace_id[:80]!r} in {self.config.log_path.name}.", 404)
        index = self.state.index
        newer, older = index.neighbours(trace_id, params.query, view=self.config.view)
        labels = index.labels_for(trace_id)
        judge = record.metadata.get("judge")
        return self.render(
            request,
            "trace.html",
            params=params,
            record=record,
            newer=newer,
            older=older,
            pairs=views.pairs(record, labels, index.versions_for(trace_id), self.config),
            rows=views.rows(record, labels, self.config, index),
            diff=views.diff(record),
            totals=views.totals(record),
            judge=judge if isinstance(judge, dict) else None,
            judge_error=record.metadata.get("judge_error"),
            extra=views.extra_fields(record),
            flags=views.flags(record),
        )

    async def label(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
            return PlainTextResponse("Refused: a label is sent as a form of at most 1 MB\n", status_code=413)
        form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_BYTES)
        if not token_matches(self.token, form.get(CSRF_FIELD), request.headers.get(CSRF_HEADER)):
            return PlainTextResponse("Refused: missing or wrong CSRF token; reload the page\n", status_code=403)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            saved, version = await run_in_threadpool(self._save_label, trace_id, fields)
        except BadRequest as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        except LabelConflictError as exc:
            return self._conflict(request, exc)
        except ConfigError as exc:  # the sidecar's disk refused the write: nothing was saved, and the page says so
            if _wants_json(request):
                return JSONResponse({"error": str(exc)}, status_code=507)
            return self.error(request, f"Not saved: {exc}.", 507)
        if _wants_json(request):
            return JSONResponse({"label": json.loads(saved.model_dump_json()), "version": version})
        qs = request.url.query
        return RedirectResponse(f"{_base(request)}/trace/{trace_id}" + (f"?{qs}" if qs else ""), status_code=303)

    def _save_label(self, trace_id: str, fields: dict[str, str]) -> tuple[Label, int]:
        self.state.refresh()
        record = self.state.read(trace_id)
        if record is None:
            raise BadRequest(f"there is no trace {trace_id[:80]!r} in the log")
        label, base = parse_label_form(record, fields, self.config.labeller)
        version = self.state.labels.write(label, base=base)
        self.state.index.sync(log=False)
        return label, version

    def _conflict(self, request: Request, exc: LabelConflictError) -> Response:
        latest = exc.latest if isinstance(exc.latest, Label) else None
        by = f" by {latest.labeller}" if latest is not None and latest.labeller else ""
        message = (
            f"Not saved: another reviewer changed pair {exc.pair} of this trace{by} since you opened it (version "
            f"{exc.base}, now {exc.version}). Their label is shown; decide again to replace it."
        )
        if _wants_json(request):
            found = None if latest is None else json.loads(latest.model_dump_json())
            return JSONResponse({"conflict": message, "version": exc.version, "label": found}, status_code=409)
        back = f"{_base(request)}/trace/{exc.trace_id}" + (f"?{request.url.query}" if request.url.query else "")
        return self.error(request, message, 409, back=back)

    def charts_page(self, request: Request) -> Response:
        try:
            params = parse_list_params(request.query_params)
        except BadRequest as exc:
            return self.error(request, str(exc))
        index_state = self.state.refresh()
        shape = self.state.shape(params.query)
        drawn = [(title, Markup(svg)) for title, svg in charts.all_charts(shape)]  # escaped in charts.py
        return self.render(request, "charts.html", params=params, charts=drawn, shape=shape, index_state=index_state)

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.statics:  # a fixed set of files: no path from the request reaches the file system
            return PlainTextResponse("not found\n", status_code=404)
        return Response(self.statics[name], media_type=STATIC_FILES[name], headers={"cache-control": "max-age=3600"})

    def api_state(self, request: Request) -> Response:
        index_state = self.state.refresh()
        return JSONResponse({**asdict(index_state), "complete": index_state.complete})


@contextlib.asynccontextmanager
async def _warm_up(state: ReviewState, _app: Starlette) -> AsyncIterator[None]:
    """At a server's start (ASGI lifespan): the thread pool the pages run in (its first use imports anyio's event
    loop backend) and the index file, so the first page pays for neither."""
    await run_in_threadpool(state.warm)
    yield


def create_app(config: ReviewConfig, *, csrf_token: str | None = None) -> Guard:
    """The review app for one trace log, wrapped in its guard (Host check, CSRF, security headers).

    Mount it anywhere (``mount_review`` puts it at ``/review`` of the MCP server's HTTP app); links follow the
    mount's root path.
    """
    token = csrf_token or new_csrf_token()
    pages = Pages(config, token)
    routes = [
        Route("/", pages.list_page),
        Route("/trace/{trace_id}", pages.trace_page),
        Route("/trace/{trace_id}/label", pages.label, methods=["POST"]),
        Route("/charts", pages.charts_page),
        Route("/static/{name}", pages.static),
        Route("/api/state", pages.api_state),
        Route("/evals", lambda request: evals_page(request, config.log_path.parent, pages.render, pages.error)),
    ]
    app = Starlette(routes=routes, lifespan=functools.partial(_warm_up, pages.state))
    app.state.review = pages.state
    return Guard(app, csrf_token=token, allowed_hosts=config.allowed_hosts)


def mount_review(app: Starlette, log_path: str | Path, *, path: str = "/review", **options: Any) -> str:
    """Mount the review app for ``log_path`` on another Starlette app (the MCP server's HTTP app) at ``path``.

    Returns the path it is served under (with a trailing slash). ``options`` are ReviewConfig fields.
    """
    app.router.routes.append(Mount(path, app=create_app(ReviewConfig(log_path=Path(log_path), **options))))
    return path.rstrip("/") + "/"
