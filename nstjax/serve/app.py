"""The studio's Starlette application: the page, its API and its event stream.

Endpoints (every error is JSON ``{"error": ..., "errors": {field: message}}``, never a
stack trace):

* ``GET /``, ``GET /static/...``: the page (plain HTML, JS, CSS shipped in the package).
* ``GET /api/options``: the form's defaults (the library's) and choices, and the limits.
* ``POST /api/run``, ``POST /api/sweep``: start a run or a sweep from a multipart form
  (``content``/``style`` files, or ``content_path``/``style_path``, and the options);
  400 with a message per field, 409 while another run computes, 413 for too large a body.
* ``POST /api/stop``: stop the running work after its current chunk (409 when none runs).
* ``GET /api/state``: the whole state; ``GET /api/events``: server-sent events
  (``?until=finished`` ends the stream with the run).
* ``GET /api/runs``: past runs; ``GET /api/runs/{id}``: one run's sidecar and the form it
  fills; ``GET /api/runs/{id}/files/{name}``: its result, sidecar, loss plot, sheet.
* ``POST /api/sidecar``: a sidecar file given back: the form it fills.

Every ``POST`` must carry the header ``X-Nstjax: 1`` (the page's ``fetch`` sets it): a
form on another web site cannot, so it cannot start runs here.  Only the ``Host`` names
the server was started for are answered (no DNS rebinding).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from nstjax.io import jsonio
from nstjax.io.image import ImageError, display_path, load_image
from nstjax.serve import events, jobs, records, settings
from nstjax.serve.uploads import (
    MAX_UPLOAD_BYTES,
    Folders,
    PathRefused,
    local_image,
    run_file,
    store_upload,
)

STATIC = Path(__file__).resolve().parent / "static"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
           "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff",
           "Cache-Control": "no-store"}


def error(status: int, message: str, errors: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "errors": errors or {}}, status, headers=HEADERS)


def ok(data, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonio.to_jsonable(data), status, headers=HEADERS)


async def read_form(request: Request, max_upload: int):
    """The request's form, or an error response: a body over the limit is refused from its
    declared length before it is read; a request without the page's header is refused."""
    if request.headers.get("x-nstjax") != "1":
        return None, error(403, "refused: requests must come from the studio's page")
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return None, error(411, "refused: the request must declare its length")
    if int(length) > 2 * max_upload + 256 * 1024:
        return None, error(413, f"too large: uploads are limited to {max_upload / 2**20:.0f} MB "
                           "per image")
    try:
        return await request.form(max_files=4, max_fields=64, max_part_size=64 * 1024), None
    except HTTPException as e:
        return None, error(400, f"bad form: {e.detail}")


async def _image_source(form, role: str, folders: Folders, max_upload: int):
    """``(path, name shown, None)`` of the role's image (an upload kept, or a typed path
    checked), or ``(None, None, message)``."""
    upload = form.get(role)
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            if upload.size is not None and upload.size > max_upload:
                raise PathRefused(f"the file is {upload.size / 2**20:.1f} MB, over this "
                                  f"server's {max_upload / 2**20:.0f} MB limit")
            data = await upload.read()
            path = await run_in_threadpool(store_upload, data, folders, max_bytes=max_upload)
            return path, display_path(upload.filename), None
        text = form.get(f"{role}_path")
        if isinstance(text, str) and text.strip():
            return local_image(text, folders), display_path(text.strip()), None
    except PathRefused as e:
        name = upload.filename if isinstance(upload, UploadFile) and upload.filename else ""
        return None, None, f"{display_path(name)}: {e}" if name else str(e)
    return None, None, f"choose a {role} image (upload one, or give a path)"


async def load_inputs(form, size: int, folders: Folders, max_upload: int):
    """``({role: image array}, {role: path}, {field: message})`` for content and style,
    decoded with the command line's checks."""
    arrays, paths, errors = {}, {}, {}
    for role in ("content", "style"):
        path, shown, message = await _image_source(form, role, folders, max_upload)
        if message:
            errors[role] = message
            continue
        try:
            arrays[role] = await run_in_threadpool(load_image, path, size=size)
            paths[role] = path
        except ImageError as e:
            errors[role] = str(e).replace(display_path(path), shown)
    return arrays, paths, errors


def routes_for(folders: Folders, runner: jobs.Runner | None, hub: events.Hub, *,
               max_upload: int, max_size: int, stop_event=None) -> list:
    """The application's routes (``runner`` None: a view of a command-line run, which
    ``stop_event`` stops)."""

    async def start(request: Request, sweep: bool):
        if runner is None:
            return error(409, "this page watches a command-line run; start runs with "
                         "nstjax serve")
        form, refused = await read_form(request, max_upload)
        if refused:
            return refused
        try:
            return await start_from(form, sweep)
        finally:
            await form.close()              # the uploads' spooled files

    async def start_from(form, sweep: bool):
        if runner.busy():
            return error(409, runner.busy_message())
        chosen, errors = settings.parse_form(form, sweep=sweep, max_size=max_size)
        size = chosen.size if chosen else settings.default_size(max_size)
        arrays, paths, image_errors = await load_inputs(form, size, folders, max_upload)
        errors.update(image_errors)
        if errors:
            return error(400, "fix the marked fields", errors)
        plan, refusal = await run_in_threadpool(     # NNST's plan compiles
            jobs.plan_memory, arrays["content"], arrays["style"], chosen)
        if refusal:
            return error(400, refusal, {"size": refusal})
        inputs = {"content": str(paths["content"]), "style": [str(paths["style"])]}
        make = jobs.sweep_work if sweep else jobs.stylize_work
        labels = jobs.sweep_labels(chosen.sweep) if sweep else ()
        try:
            run_id = runner.submit("sweep" if sweep else "run",
                                   make(arrays["content"], arrays["style"], chosen, inputs,
                                        plan),
                                   total=chosen.solver.max_iter, labels=labels)
        except jobs.Busy as e:
            return error(409, str(e))
        except (OSError, RuntimeError) as e:        # no run folder, or no thread
            return error(500, f"cannot start the run: {jobs.one_line(e)}")
        return ok({"id": run_id, "status": "running"}, 202)

    async def stop(request: Request):
        if request.headers.get("x-nstjax") != "1":
            return error(403, "refused: requests must come from the studio's page")
        if runner is None and stop_event is not None and hub.publish_if(
                ("running",), "status", {"status": "stopping", "message": "stopping the "
                                         "command-line run after its current chunk"},
                status="stopping"):
            stop_event.set()
            return ok({"stopping": True})
        if runner is None:
            return error(409, "nothing is running")
        return ok({"stopping": True}) if runner.stop() else error(409, "nothing is running")

    async def event_stream(request: Request):
        until = request.query_params.get("until") == "finished"
        return StreamingResponse(events.stream(hub, request.is_disconnected,
                                               until_finished=until),
                                 media_type="text/event-stream",
                                 headers={**HEADERS, "X-Accel-Buffering": "no"})

    async def run_record(request: Request):
        try:
            path = run_file(folders, request.path_params["run_id"], records.SIDECAR,
                            records.DOWNLOADS)
        except PathRefused:
            try:
                path = run_file(folders, request.path_params["run_id"], records.REPORT,
                                records.DOWNLOADS)
            except PathRefused as e:
                return error(404, str(e))
        record = records.read_record(path.parent)
        if record is None:
            return error(404, "no readable sidecar in that run")
        return ok({"id": path.parent.name, "record": record, "files": records.files_of(
            path.parent), "form": _form_or_empty(record)})

    async def download(request: Request):
        try:
            path = run_file(folders, request.path_params["run_id"], request.path_params["name"],
                            records.DOWNLOADS)
        except PathRefused as e:
            return error(404, str(e))
        return FileResponse(path, headers=HEADERS, content_disposition_type="attachment"
                            if request.query_params.get("download") else "inline",
                            filename=f"{path.parent.name}-{path.name}")

    async def sidecar(request: Request):
        form, refused = await read_form(request, 1024 * 1024)
        if refused:
            return refused
        try:
            upload = form.get("sidecar")
            if not isinstance(upload, UploadFile):
                return error(400, "choose a sidecar file (result.png.json)",
                             {"sidecar": "missing"})
            text = (await upload.read(1024 * 1024 + 1)).decode("utf-8")
            return ok({"form": settings.form_from_sidecar(jsonio.loads(text))})
        except (ValueError, UnicodeDecodeError) as e:
            message = f"not an nstjax sidecar ({jobs.one_line(e)})"
            return error(400, message, {"sidecar": message})
        finally:
            await form.close()

    return [
        Route("/", lambda r: FileResponse(STATIC / "index.html", headers=HEADERS)),
        Route("/api/options", lambda r: ok({**settings.defaults(max_size), "limits": {
            "max_upload_bytes": max_upload, "max_size": max_size,
            "images": [str(p) for p in folders.images], "can_start": runner is not None}})),
        Route("/api/run", functools.partial(start, sweep=False), methods=["POST"]),
        Route("/api/sweep", functools.partial(start, sweep=True), methods=["POST"]),
        Route("/api/stop", stop, methods=["POST"]),
        Route("/api/state", lambda r: ok(hub.snapshot())),
        Route("/api/events", event_stream),
        Route("/api/runs", lambda r: ok({"runs": records.past_runs(folders.runs)})),
        Route("/api/runs/{run_id}", run_record),
        Route("/api/runs/{run_id}/files/{name}", download),
        Route("/api/sidecar", sidecar, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]


def _form_or_empty(record) -> dict:
    with contextlib.suppress(ValueError):
        return settings.form_from_sidecar(record)
    return {}


async def _http_error(request, exc: HTTPException):
    return error(exc.status_code, str(exc.detail))


async def _server_error(request, exc: Exception):
    return error(500, f"internal error: {jobs.one_line(exc)}")


def create_app(folders: Folders, *, load_vgg: Callable | None = None,
               hub: events.Hub | None = None, max_upload: int = MAX_UPLOAD_BYTES,
               max_size: int = 1024, hosts=LOCAL_HOSTS, stop_event=None) -> Starlette:
    """The studio.

    Args:
      folders: where it may read and write (:func:`nstjax.serve.uploads.make_folders`).
      load_vgg: ``() -> VGGWeights``, called at the first run; ``None`` makes a page that
        only watches ``hub`` (``nstjax stylize --web``).
      hub: the state pages see (a new one by default).
      max_upload: bytes per uploaded image.
      max_size: the largest long edge a run may ask for.
      hosts: the ``Host`` names answered (``["*"]`` for any).
      stop_event: without ``load_vgg``, set by the page's stop button.
    """
    hub = hub or events.Hub()
    runner = None if load_vgg is None else jobs.Runner(hub, folders.runs, load_vgg=load_vgg)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if runner is not None and runner.stop():       # a run in progress keeps its picture
            await run_in_threadpool(runner.join, 30.0)

    app = Starlette(routes=routes_for(folders, runner, hub, max_upload=max_upload,
                                      max_size=max_size, stop_event=stop_event),
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
                    exception_handlers={HTTPException: _http_error, Exception: _server_error},
                    lifespan=lifespan)
    app.state.hub, app.state.runner, app.state.folders = hub, runner, folders
    return app
