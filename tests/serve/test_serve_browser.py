"""``nstjax serve`` in a real browser: Debian's headless Chromium driven by Playwright loads
the page, uploads two small images, starts a run, sees the live picture change, closes the
page and finds the run still going in a new one, stops it and downloads the result; a
screenshot of the page mid-run is kept (issue 22).

Marked ``browser``; skipped where Chromium or Playwright is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("NSTJAX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as e:          # noqa: BLE001 - a browser that will not start
            pytest.skip(f"Chromium does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture
def studio_url(tmp_path, tiny_vgg):
    from nstjax.serve.app import create_app
    from nstjax.serve.server import address, bind, start_in_thread
    from nstjax.serve.uploads import make_folders

    folders = make_folders([tmp_path], tmp_path / "out")
    sock = bind("127.0.0.1", 0)
    server, thread = start_in_thread(create_app(folders, load_vgg=lambda: tiny_vgg), sock)
    yield address(sock)
    server.should_exit = True
    thread.join(20)


def save_png(path: Path, h: int, w: int, seed: int) -> Path:
    Image.fromarray((make_image(h, w, seed) * 255).astype(np.uint8)).save(path)
    return path


def wait_for(check, timeout=30.0, every=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_a_run_in_the_browser(browser, studio_url, tmp_path):
    content = save_png(tmp_path / "content.png", 40, 48, 1)
    style = save_png(tmp_path / "style.png", 48, 48, 2)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(studio_url)
    wait_for(lambda: page.input_value("#size"))      # the defaults are in
    assert page.input_value("#iters") == ""              # the command's default ladder
    assert "coarse to fine" in page.get_attribute("#iters", "placeholder")
    page.set_input_files("#content", str(content))
    page.set_input_files("#style", str(style))
    for field, value in {"size": "48", "iters": "20000", "style_weight": "1e6",
                         "style_layers": "relu1_1,relu2_1", "content_layers": "relu2_1"}.items():
        page.fill(f"#{field}", value)
    page.click("#start")
    pictures = set()

    def two_pictures():
        src = page.get_attribute("#live-image", "src")
        if src:
            pictures.add(src)
        return len(pictures) >= 2

    wait_for(two_pictures)
    assert all(p.startswith("data:image/png") for p in pictures)
    shots = Path(os.environ.get("NSTJAX_SCREENSHOTS", tmp_path))
    page.screenshot(path=str(shots / "serve_browser_mid_run.png"))
    assert page.text_content("#status").startswith("running")
    before = int(page.evaluate("state.iteration"))
    page.close()                                           # closing the page: the run goes on

    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(studio_url)
    wait_for(lambda: page.evaluate("state ? state.iteration : 0") > before)
    assert page.text_content("#status").startswith("running")
    page.click("#stop")
    page.wait_for_selector("#status.stopped", timeout=30_000)
    page.wait_for_selector("#download-result-png", timeout=30_000)
    with page.expect_download() as download:
        page.click("#download-result-png")
    result = Image.open(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert result.size == (48, 40)
    wait_for(lambda: page.locator("#runs li").count() == 1)     # the list comes after the end
    page.fill("#size", "300")
    page.click("#runs li button")                        # reopen it: its settings return
    wait_for(lambda: page.input_value("#size") == "48")
    assert float(page.input_value("#style_weight")) == 1e6
    wait_for(lambda: (page.get_attribute("#live-image", "src") or "").endswith("/result.png"))
    assert not errors, errors
    page.close()


def test_field_messages_in_the_page(browser, studio_url):
    page = browser.new_page()
    page.goto(studio_url)
    wait_for(lambda: page.input_value("#size"))      # the defaults are in
    page.fill("#content_path", "../../etc/passwd")
    page.fill("#style_layers", "relu9_9")
    page.click("#start")
    page.wait_for_selector(".field.bad")
    assert "outside the folders" in page.text_content('.err[data-for="content"]')
    assert "unknown VGG19 layer" in page.text_content('.err[data-for="style_layers"]')
    assert "choose a style image" in page.text_content('.err[data-for="style"]')
    assert page.text_content("#message") == "fix the marked fields"
    page.close()
