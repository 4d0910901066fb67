"""``nstjax serve``: every endpoint through Starlette's TestClient, bad uploads, paths that
try to leave the chosen folders, one run at a time, stop, sweeps, sidecars (issue 22).

Runs use the tiny random VGG at 32 pixels (one compiled program shared by the tests); one
test uses the real weights.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from conftest import make_image  # noqa: E402

with warnings.catch_warnings():      # starlette 1.x would rather have httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

import nstjax  # noqa: E402
from nstjax.cli import run as cli_run  # noqa: E402
from nstjax.serve import settings  # noqa: E402
from nstjax.serve.app import create_app  # noqa: E402
from nstjax.serve.records import DOWNLOADS  # noqa: E402
from nstjax.serve.uploads import PathRefused, make_folders, run_file  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
POST = {"X-Nstjax": "1"}
SMALL = {"size": "32", "iters": "6", "style_layers": "relu1_1,relu2_1",
         "content_layers": "relu2_1"}     # a short network: quick to compile


def png_bytes(h=40, w=48, seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((make_image(h, w, seed) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(side=30000) -> bytes:
    """A valid PNG header declaring side×side pixels (a few bytes: a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def events_of(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                     and not line.startswith(":"))
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture
def studio(tmp_path, tiny_vgg):
    """``(client, folders, gate)``: a studio over tmp folders with the tiny VGG; a run waits
    for ``gate`` (set by default) before it computes."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "content.png").write_bytes(png_bytes(40, 48, 1))
    (images / "style.png").write_bytes(png_bytes(48, 48, 2))
    folders = make_folders([images], tmp_path / "out")
    gate = threading.Event()
    gate.set()

    def load_vgg():
        gate.wait(30)
        return tiny_vgg

    app = create_app(folders, load_vgg=load_vgg, max_upload=200_000)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, folders, gate
        gate.set()


def start(client, kind="run", files=None, **fields):
    data = {"content_path": "content.png", "style_path": "style.png", **SMALL, **fields}
    return client.post(f"/api/{kind}", headers=POST, data=data, files=files)


def wait_finished(client) -> list:
    return events_of(client.get("/api/events?until=finished").text)


def test_page_static_files_and_options(studio):
    client, folders, _ = studio
    page = client.get("/")
    assert page.status_code == 200 and 'id="start"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/studio.js").status_code == 200
    assert client.get("/static/studio.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    options = client.get("/api/options").json()
    assert options["values"]["iters"] == ""          # the command's default ladder
    assert "coarse to fine" in options["placeholders"]["iters"]
    assert options["values"]["style_weight"] == 100.0
    assert options["values"]["style_layers"] == ",".join(nstjax.Objective().style_layers)
    assert "adam" in options["choices"]["optimizer"]
    assert options["limits"]["images"] == [str(folders.images[0])]
    assert client.get("/api/state").json()["status"] == "idle"
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"]


def test_library_messages_are_shown_beside_their_fields(studio):
    client, _, _ = studio
    r = start(client, size="5", iters="x", style_layers="relu9_9", style_weight="-1",
              optimizer="nope", seed="-3", init="sideways")
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert errors["size"] == "--size 5 is below the 16-pixel minimum"   # the command's line
    assert "whole number" in errors["iters"]
    assert "unknown VGG19 layer 'relu9_9'" in errors["style_layers"]
    assert "init" in errors and "seed" in errors
    r = start(client, optimizer="nope", style_weight="-1")
    errors = r.json()["errors"]
    assert "nope" in errors["optimizer"] and ">= 0" in errors["style_weight"]
    assert client.get("/api/state").json()["status"] == "idle"


def test_post_needs_the_pages_header_and_a_trusted_host(studio):
    client, _, _ = studio
    r = client.post("/api/run", data={"content_path": "content.png"})
    assert r.status_code == 403
    assert client.post("/api/stop").status_code == 403
    evil = client.get("/api/state", headers={"Host": "evil.example"})
    assert evil.status_code == 400


def test_bad_uploads_are_refused_with_a_message(studio):
    client, _, _ = studio
    cases = {"notes.txt": (b"hello, not an image", "not an image"),
             "empty.png": (b"", "empty"),
             "bomb.png": (bomb_png(), "decompression bomb"),
             "cut.png": (png_bytes()[:60], "not a readable image"),
             "big.png": (os.urandom(150_000), "not an image")}
    for name, (data, expected) in cases.items():
        r = start(client, files={"content": (name, data, "image/png")}, content_path="")
        assert r.status_code == 400, name
        assert expected in r.json()["errors"]["content"], (name, r.json())
    huge = png_bytes() + os.urandom(250_000)      # a PNG with trailing bytes, over 200 kB
    r = start(client, files={"content": ("huge.png", huge, "image/png")})
    assert r.status_code == 400 and "limit" in r.json()["errors"]["content"]
    r = start(client, files={"content": ("x.png", os.urandom(700_000), "image/png")})
    assert r.status_code == 413 and "limited" in r.json()["error"]


def test_paths_outside_the_folders_are_never_read(studio, tmp_path):
    client, folders, _ = studio
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    os.symlink(secret, folders.images[0] / "link.png")
    os.symlink(tmp_path, folders.images[0] / "up")
    for path in ("../secret.png", str(secret), "link.png", "up/secret.png",
                 "../../../../etc/passwd", "/etc/passwd", "content.png\x00.txt"):
        r = start(client, content_path=path)
        assert r.status_code == 400, path
        message = r.json()["errors"]["content"]
        assert "outside the folders" in message or "give a path" in message, (path, message)
        assert str(secret) not in message or path == str(secret)
    r = start(client, content_path="missing.png")
    assert "no such image file" in r.json()["errors"]["content"]
    outside = tmp_path / "elsewhere"                  # a run folder linked out of out/runs
    outside.mkdir()
    (outside / "result.png").write_bytes(png_bytes())
    (outside / "result.png.json").write_text('{"arguments": {}}')
    os.symlink(outside, folders.runs / "run-linked")
    for url in ("/api/runs/run-1/files/secret.png", "/api/runs/a.b",    # these reach run_file
                "/api/runs/run-linked/files/result.png", "/api/runs/run-linked"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert "Traceback" not in r.text and "elsewhere" not in r.text


def test_run_file_refuses_every_way_out(tmp_path):
    folders = make_folders([tmp_path], tmp_path / "out")
    (folders.runs / "run-1").mkdir()
    (folders.runs / "run-1" / "result.png").write_bytes(png_bytes())
    (tmp_path / "result.png").write_bytes(png_bytes())
    os.symlink(tmp_path, folders.runs / "run-linked")
    assert run_file(folders, "run-1", "result.png", DOWNLOADS).name == "result.png"
    for run_id, name in ((("..", "result.png"), ("a/b", "result.png"),
                          (str(tmp_path), "result.png"), ("", "result.png"),
                          ("run-linked", "result.png"), ("run-1", "../result.png"),
                          ("run-1", "/etc/passwd"), ("run-1", "secret.png"))):
        with pytest.raises(PathRefused, match="no such run or file"):
            run_file(folders, run_id, name, DOWNLOADS)


def test_a_run_goes_live_refuses_a_second_and_writes_its_files(studio):
    client, folders, gate = studio
    gate.clear()                                 # the run waits: a second one must be refused
    r = start(client, files={"style": ("my style.png", png_bytes(48, 48, 3), "image/png")},
              style_path="", style_weight="1e6")
    assert r.status_code == 202
    run_id = r.json()["id"]
    busy = start(client)
    assert busy.status_code == 409 and "stop it or wait" in busy.json()["error"]
    gate.set()
    events = wait_finished(client)
    kinds = [k for k, _ in events]
    assert kinds[0] == "state" and kinds[-1] == "status"
    assert events[-1][1]["status"] == "done"
    pictures = [d["src"] for k, d in events if k == "image"]
    assert len(set(pictures)) >= 2 and all(p.startswith("data:image/png;base64,") for p in pictures)
    points = [p for k, d in events if k == "progress" for p in d["points"]]
    assert [p[0] for p in points] == list(range(1, 7))
    assert all(p[1] > 0 and p[3] > 0 for p in points)          # total and style terms
    state = client.get("/api/state").json()
    assert state["status"] == "done" and state["iteration"] == 6 and state["image"]
    runs = client.get("/api/runs").json()["runs"]
    assert runs[0]["id"] == run_id and runs[0]["status"] == "max_iter"
    record = client.get(f"/api/runs/{run_id}").json()
    assert record["record"]["command"] == "stylize" and record["form"]["size"] == 32
    assert record["form"]["content_path"] == str(folders.images[0] / "content.png")
    result = client.get(record["files"]["result.png"])
    assert Image.open(io.BytesIO(result.content)).size == (32, 27)
    loss_plot = client.get(record["files"]["result_loss.png"] + "?download=1")
    assert "attachment" in loss_plot.headers["content-disposition"]
    assert Image.open(io.BytesIO(loss_plot.content)).format == "PNG"
    sidecar = client.get(record["files"]["result.png.json"]).json()
    assert sidecar["iterations"] == 6 and len(sidecar["loss_history"]) == 6
    mem = sidecar["memory"]                     # the plan and the measured peak, as the CLI's
    assert 0 < mem["planned_bytes"] and 0 < mem["peak_bytes"] and mem["available_bytes"] > 0
    from nstjax.cli import build_parser, common
    _, parsers = build_parser()                 # the command line repeats the run from it
    args = common.parse_args(parsers["stylize"], ["--config", str(folders.runs / run_id /
                                                                   "result.png.json")])
    assert args.size == 32 and args.iters == 6 and args.style[0].startswith(str(folders.out))


def stop_after(client, iterations: int) -> list:
    deadline = time.time() + 30
    while client.get("/api/state").json()["iteration"] < iterations and time.time() < deadline:
        time.sleep(0.05)
    assert client.post("/api/stop", headers=POST).json() == {"stopping": True}
    return wait_finished(client)


def test_stop_keeps_the_picture_and_programs_are_reused(studio):
    client, _, _ = studio
    from nstjax.run import transfer
    assert client.post("/api/stop", headers=POST).status_code == 409     # nothing runs
    assert start(client, iters="3000").status_code == 202
    events = stop_after(client, 3)
    assert events[-1][1]["status"] == "stopped"
    sidecar = client.get(events[-1][1]["files"]["result.png.json"]).json()
    assert sidecar["status"] == "interrupted" and 3 <= sidecar["iterations"] < 3000
    compiled = transfer.advance_jit._cache_size()
    assert start(client, iters="3000", style_weight="1000").status_code == 202
    assert stop_after(client, 3)[-1][1]["status"] == "stopped"
    assert transfer.advance_jit._cache_size() == compiled     # the same compiled program


def test_a_sweep_fills_in_member_by_member(studio):
    client, _, _ = studio
    bad = start(client, "sweep", sweep_style_weight="10", preserve_color="luminance")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"preserve_color"}
    bad = start(client, "sweep", sweep_style_weight="10")
    assert "two or more" in bad.json()["errors"]["sweep_style_weight"]
    bad = start(client, "sweep", sweep_style_weight="1,x", sweep_tv_weight="0,-1")
    assert bad.json()["errors"] == {"sweep_style_weight": "not a list of numbers: '1,x'",
                                    "sweep_tv_weight": "tv-weight must be >= 0, got -1"}
    r = start(client, "sweep", sweep_style_weight="1,1e7", iters="4")
    assert r.status_code == 202
    events = wait_finished(client)
    members = [d for k, d in events if k == "member"]
    assert [m["index"] for m in members] == [0, 1]
    assert [m["label"] for m in members] == ["style=1", "style=1e+07"]
    assert members[0]["src"] != members[1]["src"]
    done = events[-1][1]
    assert done["status"] == "done"
    sheet = client.get(done["files"]["contact_sheet.png"])
    assert Image.open(io.BytesIO(sheet.content)).format == "PNG"
    report = client.get(done["files"]["sweep.json"]).json()
    assert report["command"] == "sweep" and len(report["members"]) == 2
    assert report["memory"]["planned_bytes"] > 0 and report["memory"]["peak_bytes"] > 0


def test_a_run_that_would_not_fit_is_refused_before_any_work(studio, monkeypatch):
    """The page plans memory as the command line does: a run whose plan exceeds what the
    machine has free is refused in one line beside the size, naming the largest that
    fits, and no run folder is made."""
    from nstjax.run import memory
    client, folders, _ = studio
    monkeypatch.setattr(memory, "available_bytes", lambda: 40 * 2 ** 20)
    r = start(client, size="48")
    assert r.status_code == 400
    line = r.json()["errors"]["size"]
    assert "needs about" in line and "more than the" in line and "\n" not in line
    assert "no size fits" in line or "the largest size that fits is" in line
    assert not any(folders.runs.iterdir()) if folders.runs.exists() else True
    monkeypatch.undo()
    assert start(client, size="48").status_code == 202
    assert wait_finished(client)[-1][1]["status"] == "done"


def test_sidecar_upload_fills_the_form(studio):
    client, _, _ = studio
    record = {"command": "stylize", "arguments": {"size": 64, "style_weight": 5.0,
                                                  "style_layers": ["relu1_1", "relu2_1"],
                                                  "content": "/x/c.png", "style": ["/x/s.png"],
                                                  "password": "no"}}
    r = client.post("/api/sidecar", headers=POST,
                    files={"sidecar": ("a.json", json.dumps(record).encode(), "text/json")})
    assert r.json()["form"] == {"size": 64, "style_weight": 5.0,
                                "style_layers": "relu1_1,relu2_1", "content_path": "/x/c.png",
                                "style_path": "/x/s.png"}
    r = client.post("/api/sidecar", headers=POST,
                    files={"sidecar": ("a.json", b"{not json", "text/json")})
    assert r.status_code == 400 and "not an nstjax sidecar" in r.json()["errors"]["sidecar"]


def test_a_failing_run_is_reported_in_one_line(tmp_path):
    def broken():
        raise RuntimeError("no weights here")

    folders = make_folders([tmp_path], tmp_path / "out")
    (tmp_path / "c.png").write_bytes(png_bytes())
    with TestClient(create_app(folders, load_vgg=broken), base_url="http://127.0.0.1") as c:
        assert start(c, content_path="c.png", style_path="c.png").status_code == 202
        wait_finished(c)
        state = c.get("/api/state").json()
        assert (state["status"], state["message"]) == ("failed", "RuntimeError: no weights here")


def test_serve_command_refuses_bad_flags(capsys, tmp_path):
    assert cli_run(["serve", "--port", "70000", "--out", str(tmp_path)]) == 2
    assert "--port" in capsys.readouterr().err
    assert cli_run(["serve", "--images", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.real_weights
def test_a_real_run_through_the_studio(tmp_path, real_vgg):
    folders = make_folders([tmp_path], tmp_path / "out")
    (tmp_path / "c.png").write_bytes(png_bytes(40, 48, 1))
    (tmp_path / "s.png").write_bytes(png_bytes(48, 48, 2))
    with TestClient(create_app(folders, load_vgg=lambda: real_vgg),
                    base_url="http://127.0.0.1") as c:
        r = start(c, content_path="c.png", style_path="s.png", iters="3")
        assert r.status_code == 202
        events = wait_finished(c)
        assert events[-1][1]["status"] == "done"
        points = [p for k, d in events if k == "progress" for p in d["points"]]
        assert points[-1][1] < points[0][1]


def test_stylize_web_view_shows_a_command_line_run(capsys, monkeypatch):
    import httpx

    from nstjax.cli.serve import web_view
    stops = []
    theirs = nstjax.Callbacks(progress=lambda i, v: stops.append(("progress", i)),
                              should_stop=lambda: False)
    import nstjax.cli.serve as cli_serve
    temps, real_mkdtemp = [], tempfile.mkdtemp

    def mkdtemp(**kw):
        temps.append(real_mkdtemp(**kw))
        return temps[-1]

    monkeypatch.setattr(cli_serve.tempfile, "mkdtemp", mkdtemp)
    callbacks, done = web_view(theirs, 10)
    url = capsys.readouterr().err.split("live view at ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:")
    callbacks.progress(1, 5.0)
    callbacks.terms(1, {"content": 1.0, "style": 4.0, "tv": 0.0})
    callbacks.snapshot(2, make_image(32, 32))
    assert stops == [("progress", 1)]                      # the command's own still called
    state = httpx.get(url + "api/state").json()
    assert state["status"] == "running" and state["image_iteration"] == 2
    assert state["points"] == [[1, 5.0, 1.0, 4.0, 0.0]]
    assert httpx.post(url + "api/run", headers=POST).status_code == 409
    assert not callbacks.should_stop()
    assert httpx.post(url + "api/stop", headers=POST).json() == {"stopping": True}
    assert callbacks.should_stop()                          # the page's stop button
    done("3 iterations")
    assert httpx.get(url + "api/state").json()["status"] == "stopped"
    assert httpx.post(url + "api/stop", headers=POST).status_code == 409    # ended: no stop
    assert os.path.isdir(temps[0])
    done.close()                                # what the end of the process does
    assert not os.path.exists(temps[0])
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "api/state", timeout=2)


def test_an_unexpected_error_is_one_line_of_json(studio, monkeypatch):
    client, _, _ = studio
    from nstjax.serve import records

    def broken(runs):
        raise KeyError("a bug")

    monkeypatch.setattr(records, "past_runs", broken)
    client = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    r = client.get("/api/runs")
    assert r.status_code == 500
    assert r.json()["error"] == "internal error: KeyError: 'a bug'"
    assert "Traceback" not in r.text


def test_only_loopback_unless_asked_with_a_warning(capsys):
    from nstjax.cli.serve import trusted_hosts
    from nstjax.serve.server import is_loopback
    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0",
                                     "192.168.1.5")] == [True, True, True, False, False]
    assert "127.0.0.1" in trusted_hosts("127.0.0.1") and not capsys.readouterr().err
    assert trusted_hosts("0.0.0.0") == ["*"]
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err


def test_a_run_that_cannot_start_leaves_the_studio_free(studio, monkeypatch):
    client, _, _ = studio
    from nstjax.serve import jobs, records
    real_folder = records.new_run_folder

    def no_folder(runs, kind):
        raise PermissionError(13, "Permission denied", str(runs))

    monkeypatch.setattr(records, "new_run_folder", no_folder)
    r = start(client)
    assert r.status_code == 500 and "Permission denied" in r.json()["error"]
    assert client.get("/api/state").json()["status"] == "idle"

    class NoThread(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(records, "new_run_folder", real_folder)
    monkeypatch.setattr(jobs.threading, "Thread", NoThread)
    r = start(client)
    assert r.status_code == 500 and "can't start new thread" in r.json()["error"]
    assert client.get("/api/state").json()["status"] == "failed"
    monkeypatch.undo()
    assert start(client).status_code == 202          # not busy for ever
    assert wait_finished(client)[-1][1]["status"] == "done"


def test_stopping_is_never_announced_after_the_end(tmp_path):
    from nstjax.serve import jobs
    from nstjax.serve.events import FINISHED, Hub
    statuses, gate = [], threading.Event()
    hub = Hub()
    real_publish = hub.publish

    def publish(kind, data, **fields):
        if kind == "status":
            statuses.append(data["status"])
        real_publish(kind, data, **fields)

    hub.publish = publish
    runner = jobs.Runner(hub, tmp_path / "runs", load_vgg=lambda: None)

    class SlowEvent(threading.Event):       # the run ends while stop() is under way
        def set(self):
            gate.set()
            time.sleep(0.3)
            super().set()

    runner.submit("run", lambda vgg, folder, live: (gate.wait(10), ("ok", {}))[1], total=1)
    # only this run's stop event is slow (a patched threading.Event would also slow the
    # thread's own start-up event, whose set() opened the gate before stop() was called)
    runner.stop_event.__class__ = SlowEvent
    assert runner.stop()
    runner.join(10)
    assert statuses[0] == "stopping" and statuses[-1] in FINISHED, statuses
    assert hub.snapshot()["status"] in FINISHED and not runner.busy()
    assert not runner.stop()                      # nothing runs: nothing to stop


def test_a_page_sees_each_change_once():
    import asyncio

    from nstjax.serve.events import Hub
    hub = Hub()

    async def connect():
        hub.publish("progress", {"points": [[1, 2.0]]}, iteration=1)
        queue, state = hub.listen()
        hub.publish("progress", {"points": [[2, 1.0]]}, iteration=2)
        await asyncio.sleep(0)
        return state, [queue.get_nowait() for _ in range(queue.qsize())]

    state, queued = asyncio.run(connect())
    assert state["points"] == [[1, 2.0]]
    assert queued == [("progress", {"points": [[2, 1.0]]})]


def test_the_default_size_respects_max_size():
    assert settings.DEFAULT_SIZE == 384
    assert settings.parse_form({}, max_size=1024)[0].size == 384
    assert settings.parse_form({}, max_size=256)[0].size == 256
    assert settings.parse_form({"size": "384"}, max_size=256)[1] == {
        "size": "--size 384 is above this server's 256-pixel limit"}
    assert settings.defaults(256)["values"]["size"] == 256


def test_any_loopback_host_is_answered(tmp_path):
    from nstjax.cli.serve import trusted_hosts
    hosts = trusted_hosts("127.0.0.2")
    assert "127.0.0.2" in hosts and "localhost" in hosts
    app = create_app(make_folders([tmp_path], tmp_path / "out"), hosts=hosts)
    with TestClient(app, base_url="http://127.0.0.2:8765") as client:
        assert client.get("/api/state").status_code == 200
        assert client.get("/api/state", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_serve_refuses_a_bad_upload_limit(value, capsys, tmp_path):
    assert cli_run(["serve", "--max-upload-mb", value, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--max-upload-mb must be a number above 0" in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [["--tile", "auto"], ["--tile", "256"],
                                   ["--transfer-color-only"]])
def test_stylize_web_refuses_what_it_cannot_show(flags, capsys, tmp_path):
    code = cli_run(["stylize", "--demo", "--output", str(tmp_path / "o.png"), "--web", *flags])
    err = capsys.readouterr().err
    assert code == 2 and "--web shows a single-image solve" in err, err


def test_stylize_web_shows_a_failed_solve_as_failed(monkeypatch, tiny_vgg, tmp_path):
    from nstjax.cli import common
    from nstjax.cli import serve as cli_serve
    from nstjax.run import resolve as resolve_module
    calls, real_view = [], cli_serve.web_view

    def web_view(callbacks, total, **kw):
        joined, done = real_view(callbacks, total, **kw)

        def spy(message, failed=False):
            calls.append((message, failed))
            done(message, failed)
            done.close()
        return joined, spy

    def broken(*args, **kw):
        raise RuntimeError("the solver broke")

    monkeypatch.setattr(cli_serve, "web_view", web_view)
    monkeypatch.setattr(common, "load_vgg", lambda args: tiny_vgg)
    monkeypatch.setattr(resolve_module, "stylize", broken)     # what stylize_run calls
    with pytest.raises(RuntimeError, match="the solver broke"):      # a bug: not hidden
        cli_run(["stylize", "--demo", "--output", str(tmp_path / "o.png"), "--web",
                 "--size", "32", "--iters", "2", "--style-layers", "relu1_1", "relu2_1",
                 "--content-layers", "relu2_1"])
    assert calls == [("the run failed (see the command's output)", True)]


def test_a_preset_on_the_page_is_the_command_lines_recipe():
    from nstjax.run.presets import PRESETS

    options = settings.defaults()
    assert options["choices"]["preset"] == ["", *PRESETS]
    assert options["presets"]["classic"]["values"]["style_loss"] == "gram-chw"
    form = {**options["presets"]["classic"]["values"], "preset": "classic", "size": "64"}
    chosen, errors = settings.parse_form(form)
    assert not errors, errors
    assert chosen.objective.style_losses == ("gram-chw",) and chosen.objective.tv_loss == "sum"
    assert chosen.solver.history_size == 100 and chosen.solver.max_iter == 500
    assert chosen.arguments["preset"] == "classic" and chosen.ladder is None
    form = {**options["presets"]["crowsonkb"]["values"], "preset": "crowsonkb", "size": "256"}
    chosen, errors = settings.parse_form(form, max_size=512)
    assert not errors, errors
    assert chosen.ladder.min_size == 128 and chosen.ladder.iters == (1000, 500, 500)
    assert chosen.ladder.carry_moments and chosen.solver.average == 0.99
    chosen, _ = settings.parse_form({**form, "size": "96"})
    assert chosen.ladder.min_size == 96 and chosen.ladder.iters == (1000,)
    _, errors = settings.parse_form({"preset": "nope"})
    assert "classic" in errors["preset"]
    _, errors = settings.parse_form({"preset": "nnst", "sweep_style_weight": "1,2"}, sweep=True)
    assert "one image at a time" in errors["preset"]
    _, errors = settings.parse_form({"preset": "nnst", "content_weight": "2"})
    assert "[0, 1]" in errors["content_weight"]


def test_an_nnst_run_through_the_studio(studio):
    client, _, _ = studio
    r = start(client, preset="nnst", iters="2", lr="0.002", content_weight="0.25",
              style_layers="", content_layers="")     # NNST takes its own layers
    assert r.status_code == 202, r.text
    events = wait_finished(client)
    assert events[-1][1]["status"] == "done", events[-1]
    run_id = r.json()["id"]
    record = client.get(f"/api/runs/{run_id}").json()
    assert record["record"]["arguments"]["preset"] == "nnst"
    assert record["record"]["iterations"] == 4             # one scale and the last pass
    assert record["form"]["preset"] == "nnst"
    planned = record["record"]["memory"]                    # planned as the command's
    assert 0 < planned["planned_bytes"] < planned["available_bytes"]
    assert planned["peak_bytes"] > 0


def test_a_preset_alone_on_the_form_is_its_whole_recipe(tmp_path, capsys):
    """A form (an API client's) that names only the preset gets every setting the preset
    makes, the start among them; and ``--config`` on such a sidecar, which names the preset
    but not each of its settings, runs the preset's recipe on the command line."""
    from nstjax.cli import run
    from nstjax.run.presets import PRESETS

    chosen, errors = settings.parse_form({"preset": "classic", "size": "48"})
    assert not errors, errors
    assert chosen.init == PRESETS["classic"].settings["init"] == "grey"
    assert chosen.solver.history_size == PRESETS["classic"].settings["history"]
    sidecar = tmp_path / "web.png.json"
    sidecar.write_text(json.dumps({"command": "stylize", "arguments": {
        "preset": "classic", "demo": True, "size": 48, "iters": 2, "style_loss": None}}))
    out = tmp_path / "again.png"
    assert run(["stylize", "--config", str(sidecar), "--output", str(out),
                "--no-progress"]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "again.png.json").read_text())
    assert record["solver"]["history_size"] == PRESETS["classic"].settings["history"]
    assert record["objective"]["tv_loss"] == "sum" and record["arguments"]["init"] == "grey"
    assert record["iterations"] == 2
