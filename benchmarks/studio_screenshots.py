"""Screenshots of ``nstjax serve`` and the time from "Start run" to the first live picture.

Starts the real command (``python -m nstjax serve --port 0``) with the real weights, drives
it with Debian's headless Chromium (Playwright), and writes ``serve_idle.png``,
``serve_mid_run.png`` and ``serve_sweep.png`` (palette PNGs, small) into ``--out``::

    python benchmarks/studio_screenshots.py --images ../shared/images --out docs

The first run is timed twice: with an empty compilation cache (``--cold``: a fresh cache
folder, so the programs are compiled) and again in the same server (the programs reused).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start_server(images: str, out: str, env: dict) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "nstjax", "serve", "--port", "0",
                             "--images", images, "--out", out], env=env,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        print(line, end="", file=sys.stderr)
        if "nstjax studio at " in line:
            return proc, line.split(" at ", 1)[1].split()[0]
    raise SystemExit("the server did not start")


def shot(page, path: Path) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(192).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def first_picture(page, timeout=600.0) -> float:
    """Click Start run; seconds until the live picture first shows."""
    page.evaluate("document.querySelector('#live-image').removeAttribute('src')")
    started = time.perf_counter()
    page.click("#start")
    while time.perf_counter() - started < timeout:
        if page.get_attribute("#live-image", "src"):
            return time.perf_counter() - started
        time.sleep(0.02)
    raise SystemExit("no live picture")


def wait_status(page, status: str, timeout=900.0) -> None:
    page.wait_for_selector(f"#status.{status}", timeout=timeout * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="../shared/images")
    ap.add_argument("--content", default="tubingen.jpg")
    ap.add_argument("--style", default="starry_night.jpg")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--size", default="256")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    out = Path(args.out)
    env = dict(os.environ, NSTJAX_COMPILATION_CACHE=tempfile.mkdtemp(prefix="nstjax-cold-"))
    studio = tempfile.mkdtemp(prefix="nstjax-studio-")
    proc, url = start_server(args.images, studio, env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1240, "height": 860})
            page.goto(url)
            while not page.input_value("#size"):       # the defaults are in
                time.sleep(0.05)
            for field, value in {"content_path": args.content, "style_path": args.style,
                                 "size": args.size}.items():
                page.fill(f"#{field}", value)
            shot(page, out / "serve_idle.png")
            cold = first_picture(page)
            print(f"first live picture at {args.size} px, programs compiled: {cold:.1f} s")
            time.sleep(20)
            shot(page, out / "serve_mid_run.png")
            page.click("#stop")
            wait_status(page, "stopped")
            warm = first_picture(page)
            print(f"first live picture at {args.size} px, programs reused: {warm:.1f} s")
            page.click("#stop")
            wait_status(page, "stopped")
            browser.close()
        proc.terminate()
        proc.wait(30)
        proc, url = start_server(args.images, studio, env)   # the same disk cache
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1240, "height": 860})
            page.goto(url)
            while not page.input_value("#size"):
                time.sleep(0.05)
            for field, value in {"content_path": args.content, "style_path": args.style,
                                 "size": args.size}.items():
                page.fill(f"#{field}", value)
            restart = first_picture(page)
            print(f"first live picture at {args.size} px, new server, programs from the "
                  f"persistent cache: {restart:.1f} s")
            page.click("#stop")
            wait_status(page, "stopped")
            page.fill("#size", "128")
            page.fill("#iters", "40")
            page.fill("#sweep_style_weight", "1,10,100,1000")
            page.click("#start-sweep")
            while page.locator("#sheet figure img").count() < 2:    # two members in
                time.sleep(0.1)
            shot(page, out / "serve_sweep.png")
            wait_status(page, "done")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
