"""Video style transfer: warping, consistency weights, the temporal loss and its helpers
against NumPy closed forms; resume against an uninterrupted run; the command end to end."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import av
import jax
import numpy as np
import pytest
from conftest import make_image
from PIL import Image

import nstjax
from nstjax.cli import build_parser, common
from nstjax.cli import run as cli_run
from nstjax.cli.video_work import Work, settings_of
from nstjax.objective.temporal import Temporal, temporal_loss
from nstjax.video import flow as F
from nstjax.video.frames import read_clip, write_clip
from nstjax.video.temporal import blend_neighbour, frame_errors, long_term_weights
from nstjax.video.warp import warp

ROOT = Path(__file__).resolve().parents[2]


def shifted(img, dx: int, dy: int):
    """NumPy: ``img`` sampled at ``(x + dx, y + dy)``, edge pixels repeated."""
    h, w = img.shape[:2]
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = np.clip(np.arange(w) + dx, 0, w - 1)
    return img[ys][:, xs]


def test_warp_by_a_whole_shift_matches_numpy():
    img = np.random.default_rng(0).random((6, 9, 3)).astype(np.float32)
    flow = np.broadcast_to(np.float32([2, -1]), (6, 9, 2))
    np.testing.assert_allclose(np.asarray(warp(img, flow)), shifted(img, 2, -1), atol=1e-6)


def test_warp_by_a_fractional_shift_is_bilinear():
    img = np.random.default_rng(1).random((7, 8, 2)).astype(np.float32)
    fx, fy = 0.25, 0.5
    flow = np.broadcast_to(np.float32([1 + fx, fy]), (7, 8, 2))
    a, b = img[:-1, 1:-1], img[:-1, 2:]          # rows y, columns x+1 and x+2
    c, d = img[1:, 1:-1], img[1:, 2:]            # rows y+1
    expected = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)
    got = np.asarray(warp(img, flow))[:-1, :-2]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def square_flows(h=24, w=32, x0=6, size=8, move=4):
    """A square moving ``move`` pixels right over a still background: the backward flow
    (frame 1 → frame 0, at frame 1's pixels) and the forward flow (frame 0 → frame 1)."""
    back = np.zeros((h, w, 2), np.float32)
    fwd = np.zeros((h, w, 2), np.float32)
    y = slice(8, 8 + size)
    back[y, x0 + move:x0 + move + size, 0] = -move
    fwd[y, x0:x0 + size, 0] = move
    return back, fwd


def test_consistency_weights_zero_where_the_background_is_disoccluded():
    back, fwd = square_flows()
    c = F.consistency_weights(back, fwd)[..., 0]
    assert c.shape == (24, 32)
    assert np.all(c[8:16, 6:10] == 0)            # the square was here: no previous pixel
    assert np.all(c[9:15, 11:17] == 1)           # inside the moved square: consistent
    assert np.all(c[:5] == 1) and np.all(c[:, 22:] == 1)    # still background


def test_consistency_weights_of_opencv_flow_on_a_synthetic_pair():
    bg = (make_image(64, 96) * 0.5 * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:20, 0:20]
    patch = np.repeat(((yy // 5 + xx // 5) % 2 * 200 + 40)[..., None], 3, -1).astype(np.uint8)
    a, b = bg.copy(), bg.copy()
    a[22:42, 20:40] = patch
    b[22:42, 24:44] = patch                      # moved 4 px right
    back = F.optical_flow(b, a)
    fwd = F.optical_flow(a, b)
    np.testing.assert_allclose(back[26:38, 28:40, 0], -4, atol=0.2)
    c = F.consistency_weights(back, fwd)[..., 0]
    assert c[24:40, 21:24].mean() < 0.5          # disoccluded strip: mostly unreliable
    assert c[26:38, 27:40].mean() == 1           # the moved square
    assert c[:, 70:].mean() > 0.95               # far background


def test_the_flow_is_cached_and_recomputed_only_for_other_frames(tmp_path, monkeypatch):
    frames = np.stack([(make_image(24, 32, seed=s) * 255).astype(np.uint8) for s in (0, 1)])
    path = tmp_path / "flow.npz"
    first = F.cached_flows(frames, path, gaps=(1,))
    calls = []
    real = F.flow_pairs
    monkeypatch.setattr(F, "flow_pairs", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = F.cached_flows(frames, path, gaps=(1,))
    assert not calls
    for a, b in zip(first[1], again[1]):
        np.testing.assert_array_equal(a, b)
    F.cached_flows(frames[::-1].copy(), path, gaps=(1,))
    assert calls == [1]


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_flow_cache_is_computed_again_with_a_note(tmp_path, damage):
    frames = np.stack([(make_image(24, 32, seed=s) * 255).astype(np.uint8) for s in (0, 1)])
    path = tmp_path / "flow.npz"
    first = F.cached_flows(frames, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if damage == "truncated"
                     else data[:200] + b"x" * 100 + data[300:])
    notes = []
    again = F.cached_flows(frames, path, log=notes.append)
    assert len(notes) == 1 and "damaged" in notes[0] and "flow.npz" in notes[0], notes
    np.testing.assert_array_equal(again[1].back, first[1].back)
    notes.clear()
    F.cached_flows(frames, path, log=notes.append)               # rewritten: read quietly
    assert not notes and sorted(p.name for p in tmp_path.iterdir()) == ["flow.npz"]


def test_temporal_loss_zero_for_a_perfectly_warped_pair_and_its_closed_form():
    rng = np.random.default_rng(3)
    prev = rng.random((8, 10, 3)).astype(np.float32)
    flow = np.broadcast_to(np.float32([-1, 2]), (8, 10, 2))
    target = np.asarray(warp(prev, flow))
    x = shifted(prev, -1, 2)
    c = (rng.random((8, 10, 1)) > 0.3).astype(np.float32)
    t = Temporal(target[None], c[None], np.float32(7.0))
    assert float(temporal_loss(x, t)) == pytest.approx(0.0, abs=1e-10)
    y = x + rng.normal(0, 0.1, x.shape).astype(np.float32)
    expected = 7.0 * np.sum(c * (y - x) ** 2) / y.size
    assert float(temporal_loss(y, t)) == pytest.approx(expected, rel=1e-5)


def test_long_term_weights_take_the_nearest_frame_where_visible():
    c = np.float32([[1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]).reshape(3, 1, 4, 1)
    expected = np.float32([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]).reshape(3, 1, 4, 1)
    np.testing.assert_array_equal(np.asarray(long_term_weights(c)), expected)


def test_blend_and_frame_errors_closed_forms():
    rng = np.random.default_rng(4)
    x, nb = rng.random((2, 5, 6, 3)).astype(np.float32)
    c = (rng.random((5, 6, 1)) > 0.5).astype(np.float32)
    zero = np.zeros((5, 6, 2), np.float32)
    got = np.asarray(blend_neighbour(x, nb, zero, c, 0.5))
    np.testing.assert_allclose(got, 0.5 * c * nb + (1 - 0.5 + 0.5 * (1 - c)) * x, atol=1e-6)
    frames = rng.random((3, 5, 6, 3)).astype(np.float32)
    weights = np.stack([c, c, np.ones_like(c)])
    flows = np.zeros((3, 5, 6, 2), np.float32)
    e = np.asarray(frame_errors(frames, flows, weights))
    for t in (1, 2):
        want = np.sum(weights[t] * (frames[t] - frames[t - 1]) ** 2) / (3 * weights[t].sum())
        assert e[t - 1] == pytest.approx(want, rel=1e-5)


# --------------------------------------------------------------------- the command line

def tiny_clip(folder: Path, n=3, size=32, step=3) -> tuple[Path, Path]:
    """A pan over a picture as ``clip.mp4`` (``n`` frames) and a style image."""
    base = (make_image(size, size + n * step) * 255).astype(np.uint8)
    frames = np.stack([base[:, i * step:i * step + size] for i in range(n)])
    clip = write_clip(folder / "clip.mp4", frames, Fraction(8), log=lambda m: None)
    style = folder / "style.png"
    Image.fromarray((make_image(32, 32, seed=5) * 255).astype(np.uint8)).save(style)
    return clip, style


@pytest.fixture
def tiny(tmp_path, tiny_vgg, monkeypatch):
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "off")
    return tiny_clip(tmp_path)


def video(clip, style, out, *extra):
    return ["video", "--content", str(clip), "--style", str(style), "--output", str(out),
            "--size", "32", "--iters", "2", "--no-progress", *map(str, extra)]


def test_command_end_to_end_writes_a_video_and_its_sidecar(tiny, tmp_path, capsys):
    clip, style = tiny
    out = tmp_path / "out.mp4"
    assert cli_run(video(clip, style, out)) == 0, capsys.readouterr().err
    back = read_clip(out)
    assert back.frames.shape == (3, 32, 32, 3) and back.fps == 8
    meta = json.loads((tmp_path / "out.mp4.json").read_text())
    assert meta["frames"] == 3 and meta["finished"] and meta["mode"] == "sequential"
    assert np.isfinite(meta["temporal_error"]) and len(meta["per_frame"]) == 3
    assert "temporal" in meta["per_frame"][1]["terms"]
    assert (tmp_path / "out.mp4.work" / "flow.npz").exists()         # kept for a rerun
    assert not (tmp_path / "out.mp4.work" / "frames").exists()
    mem = meta["memory"]                       # planned before the work, peak measured after
    assert mem["planned_bytes"] > 0 and mem["peak_bytes"] > 0 and mem["available_bytes"] > 0


def test_a_clip_whose_frames_would_not_fit_is_refused_before_any_flow(tiny, tmp_path,
                                                                      capsys, monkeypatch):
    from nstjax.run import memory
    clip, style = tiny
    monkeypatch.setattr(memory, "available_bytes", lambda: 40 * 2 ** 20)
    out = tmp_path / "out.mp4"
    assert cli_run(video(clip, style, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs about" in err[0] and "fits" in err[0], err
    assert not out.exists() and not (tmp_path / "out.mp4.work" / "flow.npz").exists()


class StopAfter:
    """A stop request once ``count`` finished frames (or a checkpoint) exist."""

    def __init__(self, work: Path, count: int):
        self.work, self.count = work, count

    def __call__(self):
        frames = list((self.work / "frames").glob("*.png")) if self.count else []
        return len(frames) >= self.count if self.count else \
            (self.work / "multipass.npz").exists()


@pytest.mark.parametrize("mode", ["sequential", "multipass"])
def test_resume_makes_the_frames_of_an_uninterrupted_run(tiny, tmp_path, capsys,
                                                         monkeypatch, mode):
    from nstjax.cli import interruption
    clip, style = tiny
    extra = ("--mode", mode, "--passes", 2, "--chunk", 2) if mode == "multipass" else \
        ("--long-term", "1,2")
    whole = tmp_path / "whole.webp"
    logged = [a for a in video(clip, style, whole, *extra) if a != "--no-progress"]
    assert cli_run([*logged, "--log-every", "1"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^video: \d+/\d+ ", err, re.MULTILINE) and ("best loss" in err) == (
        mode == "multipass"), err                                  # --log-every's lines
    part = tmp_path / "part.webp"
    work = tmp_path / "part.webp.work"
    stop = StopAfter(work, 2 if mode == "sequential" else 0)
    monkeypatch.setattr(interruption.Interruption, "should_stop", lambda self: stop())
    assert cli_run(video(clip, style, part, *extra)) == 0
    assert not part.exists() and (work / "progress.json").exists()
    err = capsys.readouterr().err
    assert "--resume" in err
    assert cli_run(video(clip, style, part, *extra)) == 2      # never overwrites the work
    monkeypatch.setattr(interruption.Interruption, "should_stop", lambda self: False)
    assert cli_run(video(clip, style, part, *extra, "--resume")) == 0
    np.testing.assert_array_equal(read_clip(part).frames, read_clip(whole).frames)
    meta = json.loads((tmp_path / "part.webp.json").read_text())
    assert all(np.isfinite(f["loss"]) for f in meta["per_frame"])


@pytest.mark.parametrize("extra, says", [
    (("--resume",), "nothing to resume"),
    (("--blend", "2"), "--blend"),
    (("--mode", "multipass", "--long-term", "2"), "--long-term is for"),
    (("--passes", "0"), "--passes"),
])
def test_bad_input_is_one_line_and_exit_2(tiny, tmp_path, capsys, extra, says):
    clip, style = tiny
    out = tmp_path / "o.mp4"
    assert cli_run(video(clip, style, out, *extra)) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and says in lines[0], lines
    assert not out.exists() and not (tmp_path / "o.mp4.work").exists()


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width × height`` pixels (a decompression bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("bad, says", [("bomb", "pixel limit"), ("broken", "not a readable")])
def test_a_bomb_or_a_broken_frame_in_a_folder_is_one_line_and_exit_2(tiny, tmp_path, capsys,
                                                                      bad, says):
    _, style = tiny
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray((make_image(32, 32) * 255).astype(np.uint8)).save(folder / "00000.png")
    if bad == "bomb":
        png_header(folder / "00001.png", 30000, 30000)
    else:
        (folder / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert cli_run(video(folder, style, tmp_path / "o.gif")) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and "00001.png" in lines[0] and says in lines[0], lines
    assert lines[0].startswith("error:") and not (tmp_path / "o.gif").exists()


def parsed(*argv):
    _, parsers = build_parser(["video"])
    return common.parse_args(parsers["video"], ["--content", "c.mp4", "--style", "s.png",
                                                "--output", "o.mp4", *argv])


def test_resume_takes_another_chunk_log_every_or_weights_but_not_other_settings(tmp_path):
    work = Work(tmp_path / "o.mp4.work")
    work.check(settings_of(parsed("--mode", "multipass", "--chunk", "8")), resume=False)
    work.create()
    again = parsed("--mode", "multipass", "--chunk", "2", "--log-every", "5", "--weights",
                   "elsewhere/vgg19.h5", "--no-progress", "--resume")
    Work(work.path).check(settings_of(again), resume=True)       # after running out of memory
    with pytest.raises(common.UsageError, match="--iters"):
        Work(work.path).check(settings_of(parsed("--mode", "multipass", "--iters", "3")),
                              resume=True)


def test_a_damaged_checkpoint_is_one_line_naming_it(tmp_path):
    work = Work(tmp_path / "o.mp4.work")
    work.path.mkdir()
    work.save_checkpoint({"pass": 1, "next": 0, "current": np.zeros(3), "terms": {}})
    assert work.checkpoint()["pass"] == 1
    work.checkpoint_path.write_bytes(work.checkpoint_path.read_bytes()[:40])
    with pytest.raises(common.UsageError) as e:
        work.checkpoint()
    message = str(e.value)
    assert "multipass.npz: damaged" in message and "start again" in message
    assert "\n" not in message
    assert sorted(p.name for p in work.path.iterdir()) == ["multipass.npz", "progress.json"]


@pytest.mark.integration
def test_writing_over_the_input_clip_is_refused_in_a_subprocess(tmp_path):
    clip, style = tiny_clip(tmp_path)
    before = clip.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "nstjax", *video(clip, style, clip)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"JAX_PLATFORMS": "cpu", "NSTJAX_NO_FETCH": "1",
                               "PATH": "/usr/bin:/bin"})
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "input" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and clip.read_bytes() == before


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as got:
        stream = got.streams.audio[0]
        return sum(f.samples for f in got.decode(stream)) / stream.sample_rate


def test_audio_is_copied_through_and_cut_with_max_frames(tiny, tmp_path, capsys):
    clip, style = tiny
    with_audio = tmp_path / "sound.mp4"
    frames = read_clip(clip).frames
    with av.open(str(with_audio), "w") as out:
        v = out.add_stream("libx264", rate=8)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = out.add_stream("aac", rate=16000)
        t = np.arange(16000 * 2, dtype=np.float32) / 16000             # 2 s of sound
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in a.encode(frame):
            out.mux(p)
        out.mux(a.encode())
        for f in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(v.encode())
    dest = tmp_path / "styled.mp4"
    assert cli_run(video(with_audio, style, dest, "--mode", "independent", "--max-frames",
                         2)) == 0, capsys.readouterr().err
    with av.open(str(dest)) as got:
        assert len(got.streams.audio) == 1 and len(got.streams.video) == 1
    assert audio_seconds(with_audio) > 1.9
    assert audio_seconds(dest) <= (2 + 2) / 8          # 2 frames at 8 fps, within 2 frames


@pytest.mark.slow
@pytest.mark.real_weights
def test_temporal_coupling_lowers_the_flicker_with_real_weights(real_vgg):
    base = (make_image(64, 112, seed=7) * 255).astype(np.uint8)
    frames = np.stack([base[:, 4 * i:4 * i + 96] for i in range(5)])
    style = make_image(64, 64, seed=8)
    flows = {1: F.flow_pairs(frames)}
    errors = {}
    for mode in ("independent", "sequential", "multipass"):
        result = nstjax.stylize_video(real_vgg, frames, style, key=jax.random.PRNGKey(0),
                                      mode=mode, flows=flows, passes=3,
                                      solver=nstjax.Solver(max_iter=30))
        assert result.done == 5 and np.all(np.isfinite(result.losses))
        errors[mode] = result.temporal_error
    assert errors["sequential"] < 0.3 * errors["independent"], errors
    assert errors["multipass"] < errors["independent"], errors
