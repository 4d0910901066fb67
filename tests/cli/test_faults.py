"""Fault injection: every bad input or fault ends in one line on stderr and exit code 2.

Each case runs the real command in a subprocess (as a user would: tracebacks, exit codes
and signals are only visible from outside) and checks, with :func:`run_fault`,

* the exit code,
* exactly one line on stderr, with no ``Traceback`` (and, where given, the text it must
  contain or must not contain),
* that the given files are byte-identical afterwards (inputs, previous outputs) and that
  the files that must not appear do not.

To add a case: build the files in ``tmp_path``, then
``run_fault(nstjax("stylize", ...), code=2, says="...", untouched=[...], absent=[...])``.
Cases that need signals can pass ``signal_when=(ready_file, signal.SIGINT)``.

The cases here are those of the library's I/O (images, weights, outputs, file names).
Most stop before any solve and need neither the real weights nor much time; those that
run a solve (interruption, all-or-nothing outputs, layers without positions, stale sweep
members) load the converted weights and are marked ``real_weights``.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from nstjax.cli import run; sys.exit(run())"


def nstjax(*argv) -> list:
    """The ``nstjax`` command line as a subprocess argument list (bytes paths allowed)."""
    return [sys.executable, "-c", CLI, *argv]


def snapshot(paths) -> dict:
    """Bytes of each existing file (a folder or missing file is recorded as such)."""
    out = {}
    for p in paths:
        p = os.fsencode(p)
        out[p] = (open(p, "rb").read() if os.path.isfile(p)
                  else "folder" if os.path.isdir(p) else None)
    return out


def run_fault(cmd, *, code=2, says=(), never=(), untouched=(), absent=(), env=None,
              signal_when=None, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` and check the fault contract; returns the finished process.

    Args:
      cmd: argument list (str or bytes items).
      code: the exit code expected.
      says: substrings the one stderr line must contain.
      never: substrings it must not contain (e.g. "delete").
      untouched: files that must be byte-identical afterwards (inputs, earlier outputs).
      absent: paths that must not exist afterwards (no partial or mistyped files).
      env: extra environment variables (None removes a variable).
      signal_when: ``(path, signum)``: send the signal once ``path`` exists, a file the
        command writes when it is ready for it (Ctrl-C cases; a fixed delay races the
        interpreter's start on a loaded machine).
      timeout: seconds before the test fails.
    """
    environment = dict(os.environ, JAX_PLATFORMS="cpu", NSTJAX_NO_FETCH="1")
    for k, v in (env or {}).items():
        if v is None:
            environment.pop(k, None)
        else:
            environment[k] = v
    before = snapshot(untouched)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environment, cwd=cwd or ROOT)
    if signal_when is not None:
        ready, signum = signal_when
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s (this process's SIGINT handler: "
                    f"{signal.getsignal(signal.SIGINT)}); stderr: {err[-2000:]!r}")
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    text = err.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert len(lines) == 1, f"{len(lines)} stderr lines:\n{text}"
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}: {text}"
    for s in ([says] if isinstance(says, str) else says):
        assert s in lines[0], f"{s!r} not in {lines[0]!r}"
    for s in ([never] if isinstance(never, str) else never):
        assert s not in lines[0], f"{s!r} in {lines[0]!r}"
    assert snapshot(untouched) == before, "an input or earlier output changed"
    for p in absent:
        assert not os.path.lexists(os.fsencode(p)), f"{p} exists"
    return result


# ----------------------------------------------------------------------------- fixtures

def png_header(width, height) -> bytes:
    """A PNG whose header claims ``width × height`` (no pixel data: a bomb's signature)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


@pytest.fixture
def inputs(tmp_path):
    """A small content and style image, and where the output goes."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray((make_image(24, 32) * 255).astype(np.uint8)).save(content)
    Image.fromarray((make_image(32, 32, seed=1) * 255).astype(np.uint8)).save(style)
    return content, style, tmp_path / "out.png"


def stylize(content, style, output, *extra):
    return nstjax("stylize", "--content", content, "--style", style, "--output", output,
                  "--size", "32", "--iters", "1", "--no-progress", *extra)


# ----------------------------------------------------------------------------- images

@pytest.mark.integration
@pytest.mark.parametrize("w, h", [(100_000, 100_000), (20_000, 20_000)])
def test_decompression_bomb_content(inputs, tmp_path, w, h):
    _, style, out = inputs
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(w, h))
    run_fault(stylize(bomb, style, out), says=[f"{w * h:,} pixels", "-pixel limit"],
              never="DecompressionBomb", untouched=[bomb, style], absent=[out])


@pytest.mark.integration
def test_folder_missing_and_undecodable_names_as_images(inputs, tmp_path):
    content, style, out = inputs
    run_fault(stylize(tmp_path, style, out), says="is a folder, not an image file",
              untouched=[content, style], absent=[out])
    run_fault(stylize(tmp_path / "no such.png", style, out), says="no such file",
              absent=[out])
    odd = os.fsencode(tmp_path) + b"/caf\xe9 \xff.png"
    run_fault(stylize(content, odd, out), says=["no such file", "caf\\xe9 \\xff.png"],
              absent=[out])


@pytest.mark.integration
def test_text_file_as_image(inputs, tmp_path):
    _, style, out = inputs
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture\n")
    run_fault(stylize(notes, style, out), says="not a readable image", untouched=[notes],
              absent=[out])


# ----------------------------------------------------------------------------- weights

@pytest.mark.integration
def test_mistyped_weights_path_is_refused_not_downloaded(inputs, tmp_path):
    content, style, out = inputs
    typo = tmp_path / "vgg91.h5"
    run_fault(stylize(content, style, out, "--weights", typo),
              says=["no such weights file", "nstjax convert-weights --output"],
              absent=[typo, out], untouched=[content, style])
    run_fault(stylize(content, style, out), env={"NSTJAX_WEIGHTS": str(typo)},
              says=["$NSTJAX_WEIGHTS", "unset NSTJAX_WEIGHTS"], absent=[typo, out])


@pytest.mark.integration
def test_photo_or_folder_as_weights_is_never_called_ours_to_delete(inputs, tmp_path):
    content, style, out = inputs
    run_fault(stylize(content, style, out, "--weights", content),
              says="not an HDF5 file", never="delete", untouched=[content], absent=[out])
    run_fault(stylize(content, style, out, "--weights", tmp_path),
              says="is a folder, not a weights file", never=["H5", "errno"], absent=[out])


# ----------------------------------------------------------------------------- outputs

@pytest.mark.integration
def test_output_that_is_a_folder(inputs, tmp_path):
    content, style, _ = inputs
    folder = tmp_path / "result.png"
    folder.mkdir()
    run_fault(stylize(content, style, folder), says="is a folder", untouched=[content, style])
    assert list(folder.iterdir()) == []


@pytest.mark.integration
def test_unwritable_output_is_found_before_any_work(inputs, tmp_path):
    content, style, _ = inputs
    # With mistyped weights too, the output's fault must be the one reported: it is checked
    # first, before weights are loaded or anything compiled.
    run_fault(stylize(content, style, "/proc/x.png", "--weights", tmp_path / "typo.h5"),
              says="/proc/x.png", never=[".part", "weights"], untouched=[content, style])


@pytest.mark.integration
def test_helper_catches_what_it_must(tmp_path):
    """The contract checker itself: each violation it exists for is reported."""
    script = tmp_path / "s.py"
    f = tmp_path / "f.txt"
    f.write_text("a")
    cases = {
        "raise SystemExit('one line')": None,  # one line, exit 1: passes with code=1
        "import sys; print('a\\nb', file=sys.stderr); sys.exit(2)": "2 stderr lines",
        "raise ValueError('x')": "Traceback",
        f"open({str(f)!r}, 'w').write('b'); raise SystemExit('x')": "changed",
    }
    for code_text, failure in cases.items():
        script.write_text(code_text)
        f.write_text("a")
        if failure is None:
            run_fault([sys.executable, script], code=1, untouched=[f])
        else:
            with pytest.raises(AssertionError, match=failure):
                run_fault([sys.executable, script], code=1, untouched=[f])
    with pytest.raises(AssertionError, match="exists"):
        script.write_text("raise SystemExit('x')")
        run_fault([sys.executable, script], code=1, absent=[f])
    ready = tmp_path / "ready"
    # The script installs Python's SIGINT handler itself, as the command installs its own:
    # a process started with SIGINT ignored (inherited from its parent) keeps it ignored.
    script.write_text(f"import signal, time, sys\n"
                      "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                      f"try:\n    open({str(ready)!r}, 'w').close()\n"
                      "    time.sleep(30)\nexcept KeyboardInterrupt:\n"
                      "    sys.exit('interrupted')\n")
    run_fault([sys.executable, script], code=1, says="interrupted",
              signal_when=(ready, signal.SIGINT), timeout=20)


# ------------------------------------------------------------------------ interruption

def _start(cmd, cache):
    env = dict(os.environ, JAX_PLATFORMS="cpu", NSTJAX_NO_FETCH="1",
               NSTJAX_COMPILATION_CACHE=str(cache))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT)


def _wait_for(path_glob, proc, timeout=240):
    """Wait until the solve is running (its first snapshot exists)."""
    start = time.monotonic()
    while not list(path_glob()):
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} early: {proc.stderr.read()[-2000:]!r}")
        if time.monotonic() - start > timeout:
            proc.kill()
            pytest.fail("the solve never started")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.mark.integration
@pytest.mark.real_weights
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_solve_and_keeps_the_work(inputs, tmp_path, cache, signum, code):
    content, style, out = inputs
    before = snapshot([content, style])
    proc = _start(stylize(content, style, out, "--iters", "100000", "--save-every", "1"),
                  cache)
    _wait_for(lambda: tmp_path.glob("out_0*.png"), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == code, text
    assert "Traceback" not in text and "interrupted" in text
    meta = json.loads((tmp_path / "out.png.json").read_text())
    assert meta["status"] == "interrupted" and 1 <= meta["iterations"] < 100000
    assert np.asarray(Image.open(out)).shape == (24, 32, 3)
    assert snapshot([content, style]) == before


@pytest.mark.integration
@pytest.mark.real_weights
def test_second_ctrl_c_quits_at_once(inputs, tmp_path, cache):
    content, style, out = inputs
    proc = _start(stylize(content, style, out, "--iters", "100000", "--save-every", "1"),
                  cache)
    _wait_for(lambda: tmp_path.glob("out_0*.png"), proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and b"Traceback" not in err


@pytest.mark.integration
@pytest.mark.real_weights
def test_ctrl_c_in_a_sweep_keeps_every_member(tmp_path, cache):
    out = tmp_path / "sweep"
    proc = _start(nstjax("sweep", "--demo", "--size", "32", "--iters", "100000", "--output-dir",
                         out, "--style-weight", "1,100"), cache)
    lines, solving = [], threading.Event()

    def read():               # the progress bar's first update: the solve is running
        for line in iter(lambda: proc.stderr.read1(4096), b""):
            lines.append(line)
            if b"best loss" in line:
                solving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert solving.wait(240), b"".join(lines).decode()[-2000:]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(10)
    assert proc.returncode == 130, b"".join(lines).decode()[-2000:]
    meta = json.loads((out / "sweep.json").read_text())
    assert [m["status"] for m in meta["members"]] == ["interrupted", "interrupted"]
    assert (out / "member_00.png").exists() and (out / "member_01.png").exists()


@pytest.mark.integration
def test_size_far_beyond_memory_is_one_line_naming_what_fits(inputs, tmp_path):
    content, style, out = inputs
    proc = run_fault(stylize(content, style, out, "--size", "60000"), says="GiB",
                     untouched=[content, style], absent=[out])
    assert b"the largest that fits is --size" in proc.stderr


@pytest.mark.integration
def test_style_size_far_beyond_memory_is_refused_naming_the_flag(inputs, tmp_path):
    content, style, out = inputs
    run_fault(stylize(content, style, out, "--style-size", "100000"), says="--style-size",
              untouched=[content, style], absent=[out])


@pytest.mark.integration
@pytest.mark.parametrize("argv, says", [
    (["invert", "--stats", "gram", "--layers", "relu9_9"], "unknown VGG19 layer"),
    (["stylize", "--resample", "--style-loss", "mmd-gauss"], "stochastic optimiser"),
])
def test_refused_before_any_work(inputs, tmp_path, argv, says):
    """Refused while parsing: no progress bar, no weights loaded, exactly one line."""
    content, style, out = inputs
    extra = (["--image", str(style)] if argv[0] == "invert"
             else ["--content", str(content), "--style", str(style)])
    run_fault(nstjax(*argv, *extra, "--output", str(out)), says=says,
              untouched=[content, style], absent=[out])


# ------------------------------------------------------------- issue 20: the last bad inputs

@pytest.mark.integration
@pytest.mark.parametrize("command, seed", [
    ("stylize", str(2 ** 63)), ("stylize", "-1"), ("stylize", str(2 ** 32)),
    ("sweep", str(2 ** 63)), ("invert", str(2 ** 32))])
def test_a_seed_outside_32_bits_is_one_line(inputs, tmp_path, command, seed):
    """JAX keeps 32 bits of a seed: 2**32 would silently be seed 0, 2**63 overflowed.  The
    commands share one ``--seed`` option and its check: every value through one command,
    and each other command once."""
    content, style, out = inputs
    if command == "stylize":
        cmd = stylize(content, style, out, "--seed", seed)
    elif command == "sweep":
        cmd = nstjax("sweep", "--content", content, "--style", style, "--style-weight",
                     "1", "10", "--output-dir", tmp_path / "sw", "--seed", seed)
    else:
        cmd = nstjax("invert", "--image", style, "--stats", "gram", "--layers", "relu1_1",
                     "--output", out, "--seed", seed)
    run_fault(cmd, says=["--seed", "4294967295"], untouched=[content, style],
              absent=[out, tmp_path / "sw"])


@pytest.mark.integration
def test_budget_scale_zero_is_refused(inputs, tmp_path):
    _, style, out = inputs
    run_fault(nstjax("invert", "--image", style, "--procedure", "stylerep", "--budget-scale",
                     "0", "--output", out), says="--budget-scale", untouched=[style],
              absent=[out])


@pytest.mark.integration
def test_a_read_only_output_is_refused_and_kept(inputs, tmp_path):
    content, style, out = inputs
    out.write_bytes(b"an earlier result")
    out.chmod(0o444)
    try:
        run_fault(stylize(content, style, out), says="read-only",
                  untouched=[content, style, out])
        assert (out.stat().st_mode & 0o777) == 0o444
    finally:
        out.chmod(0o644)


@pytest.mark.integration
def test_animation_on_the_output_is_refused(inputs, tmp_path):
    content, style, _ = inputs
    gif = tmp_path / "same.gif"
    run_fault(stylize(content, style, gif, "--animation", gif), says="--animation",
              untouched=[content, style], absent=[gif])


@pytest.mark.integration
@pytest.mark.real_weights
@pytest.mark.parametrize("flag", ["--content-layers", "--style-layers"])
def test_a_layer_without_positions_is_one_line(inputs, tmp_path, flag):
    """At 32 px pool5 has no position (it needs 32 px on each side; the content is 24)."""
    content, style, out = inputs
    run_fault(stylize(content, style, out, flag, "pool5"), says=["pool5", "no positions"],
              untouched=[content, style], absent=[out])


def test_a_thin_image_is_screened_by_its_real_shape(inputs, tmp_path):
    """A 20000×16 image is 320,000 pixels, not a 20000-pixel square: the screen lets it
    through (the run itself is not made here: --iters 0 is refused after the screen)."""
    from nstjax.cli import memory_check
    from nstjax.objective.config import Objective
    thin = tmp_path / "thin.png"
    Image.fromarray(np.zeros((16, 20000, 3), np.uint8)).save(thin)
    args = type("A", (), dict(demo=False, content=str(thin), style=[str(inputs[1])],
                              style_size=64, style_scale=None, tile=None, remat=None,
                              iters=1, optimizer=None, history=None, lr=None, tol=None,
                              tol_x=None, threshold=None, average=None))()
    assert memory_check.check_memory(args, Objective(), 20000) is not None
    # a style that follows the content's long edge would be a 20000-pixel square: refused,
    # naming a --style-size that the screen then lets through
    args.style_size = None
    with pytest.raises(memory_check.TooBig, match="--style-size") as e:
        memory_check.check_memory(args, Objective(), 20000)
    args.style_size = int(str(e.value).split("--style-size ")[1].split()[0])
    assert memory_check.check_memory(args, Objective(), 20000) is not None
    # in tiles the style keeps --size where it fits, else the largest size that does
    args.style_size = None
    fitted = memory_check.check_memory(args, Objective(), 20000, tile=2240)
    assert 16 <= fitted.style_size < 20000 and args.style_size is None


@pytest.mark.integration
@pytest.mark.real_weights
def test_outputs_are_all_or_nothing(inputs, tmp_path):
    """The sidecar cannot be written (its name is taken by a folder): the new image does
    not appear either, the previous image is untouched and no temporary file is left."""
    content, style, out = inputs
    out.write_bytes(b"the previous result")
    (tmp_path / "out.png.json").mkdir()
    run_fault(stylize(content, style, out), says="out.png.json",
              untouched=[content, style, out], absent=[tmp_path / "out_loss.png"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.real_weights
def test_a_smaller_sweep_removes_the_earlier_members(tmp_path):
    """A 2-member sweep into the folder of an earlier 3-member one leaves exactly the files
    its sweep.json lists (in this process: nothing here needs the view from outside)."""
    out = tmp_path / "sw"
    base = ["sweep", "--demo", "--size", "32", "--iters", "1", "--no-progress",
            "--output-dir", str(out)]
    from nstjax.cli import run
    for weights in (["1", "10", "100"], ["1", "10"]):
        assert run([*base, "--optimizer", "adam", "--style-weight", *weights]) == 0
    listed = {Path(m["image"]).name for m in json.loads((out / "sweep.json").read_text())["members"]}
    members = {p.name for p in out.glob("member_*.png")}
    assert members == listed == {"member_00.png", "member_01.png"}


@pytest.mark.integration
@pytest.mark.parametrize("values, says", [(np.nan, "NaN"), (np.inf, "NaN or infinite"),
                                          (200.0, "values in [0, 1]")])
def test_a_float_tiff_outside_zero_one_is_one_line(inputs, tmp_path, values, says):
    content, style, out = inputs
    a = np.full((32, 40), 0.5, np.float32)
    a[3, 4] = values
    tiff = tmp_path / "float.tif"
    Image.fromarray(a, mode="F").save(tiff)
    run_fault(stylize(tiff, style, out), says=says, untouched=[tiff, style], absent=[out])


_CACHED_PROGRAM = """
import sys, jax, jax.numpy as jnp
from nstjax.run.compile_cache import enable_compilation_cache
from nstjax.solve import optimize
from nstjax.solve.minimize import minimize
misses = []
jax.monitoring.register_event_listener(
    lambda name, **kw: misses.append(name) if name.endswith("cache_misses") else None)
enable_compilation_cache()
fun = lambda x: jnp.sum((x - jnp.linspace(0.1, 0.9, 8)) ** 4)
jax.jit(lambda x: minimize(fun, x, optimize.make_optimizer("plbfgs"), max_iter=3).x)(
    jnp.zeros(8)).block_until_ready()
print(len(misses))
"""


@pytest.mark.integration
def test_a_damaged_compilation_cache_is_repaired_quietly(tmp_path):
    """Every cache file overwritten with garbage: the next process warns nothing but one
    note and writes good entries again; the process after it compiles nothing (a small
    optimisation, through the same cache set-up as every command's)."""
    cache = tmp_path / "cache"
    env = dict(os.environ, JAX_PLATFORMS="cpu", NSTJAX_COMPILATION_CACHE=str(cache))

    def job():
        done = subprocess.run([sys.executable, "-c", _CACHED_PROGRAM], capture_output=True,
                              env=env, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stderr, int(done.stdout.split()[-1])

    _, misses = job()
    entries = list(cache.glob("*-cache"))
    assert misses >= 1 and len(entries) == misses
    for e in entries:
        e.write_bytes(b"damaged")
    err, _ = job()
    assert "Error reading" not in err and "Traceback" not in err, err
    assert err.count("damaged entry") == 1, err
    assert all(e.read_bytes() != b"damaged" for e in cache.glob("*-cache"))
    err, misses = job()
    assert misses == 0 and "damaged entry" not in err, err


# ------------------------------------------------------------- issue 33: memory plans

@pytest.mark.integration
@pytest.mark.parametrize("command, extra, says", [
    ("stylize", ["--max-memory", "0.3"], ["--max-memory allows", "GiB"]),
    ("stylize", ["--max-memory", "-1"], "--max-memory must be a positive"),
    ("stylize", ["--iters", "2000000000"], ["loss histories", "--iters"]),
    ("sweep", ["--max-memory", "0.3"], ["--max-memory allows", "GiB"]),
    ("stylize", ["--preset", "nnst", "--max-memory", "0.3"],
     ["--preset nnst", "--max-memory allows", "GiB"]),
])
def test_a_run_beyond_its_memory_is_one_line_before_any_work(inputs, tmp_path, command,
                                                             extra, says):
    """Planned before the inputs are decoded: one line naming what would fit, exit 2 (a
    billion-iteration run would hold gigabytes of loss history, and was killed)."""
    content, style, out = inputs
    if command == "stylize":
        cmd = stylize(content, style, out, *extra)
    else:
        cmd = nstjax("sweep", "--content", content, "--style", style, "--style-weight",
                     "1", "10", "--output-dir", tmp_path / "sw", *extra)
    run_fault(cmd, says=says, untouched=[content, style], absent=[out, tmp_path / "sw"])
