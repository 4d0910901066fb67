"""The reference runner beside ``neural-style`` 0.5.7 (ProGamerGov's PyTorch port of the same tool).

Both run on the same pair, from ``weights/vgg19.h5`` (converted here to the port's
``state_dict`` layout), each from several random starts; the table gives each run's style
distance (``nstjax score``'s sliced Wasserstein and the pixel-patch distance of
``benchmarks/measures.py``), relu4_2 content error and seconds, and the spread across the
seeds of each tool, so that the difference between the two tools reads against the noise of
their starts.

The port is not the Lua tool line for line; what it does differently, read from its
``neural_style.py`` and ``loader/CaffeLoader.py``:

* ``TVLoss`` is anisotropic L1 (``τ Σ |Δx| + |Δy|`` through autograd), where the Lua tool's
  is the gradient of ``τ ½ Σ (Δx² + Δy²)`` (which the reference runner follows);
* max pooling is ``nn.MaxPool2d(2, 2)`` in floor mode, where ``loadcaffe`` builds Caffe's
  ceil mode: on an odd side the port drops the last row or column;
* it asks ``torch.optim.LBFGS`` for ``max_iter`` iterations with torch's default
  ``max_eval = 1.25 · max_iter``, as the runner does.

The port imports ``torchvision.transforms`` only; where torchvision's compiled operators do not
load beside the installed torch, ``--shim`` puts a package in front whose ``__init__`` only
points at the real one's Python modules (the transforms are pure Python).

    pip install --no-deps --target /tmp/ns neural-style==0.5.7 torchvision==0.28.0
    python benchmarks/reference/cross_check.py --site /tmp/ns --shim --pair coffee-starry
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import neural_style as reference  # noqa: E402

def port_state_dict(params) -> dict:
    """``{"features.{i}.weight"|"features.{i}.bias": tensor}``: the port's ``nn.Sequential``
    has one module per entry of :func:`neural_style.vgg_layers` (conv, ReLU, ..., pool), so a
    conv's index is its position there."""
    import torch

    state = {}
    for i, (_, kind, conv) in enumerate(reference.vgg_layers()):
        if kind == "conv":
            w, b = params[conv]
            state[f"features.{i}.weight"] = torch.as_tensor(w)
            state[f"features.{i}.bias"] = torch.as_tensor(b)
    return state


def _shim(site: Path, folder: Path) -> Path:
    pkg = folder / "torchvision"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(
        f"__path__ = [{str(site / 'torchvision')!r}]\n__version__ = 'python modules only'\n"
        "def _is_tracing():\n    return False\n")
    return folder


def run_port(site, shim, model, content, style, out, iters, seed, threads):
    path = [str(p) for p in ([shim] if shim else []) + [site]]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path + [os.environ.get("PYTHONPATH", "")]))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    size = max(np.asarray(_image(content)).shape[:2])
    cmd = [sys.executable, "-m", "neural_style.neural_style", "-content_image", str(content),
           "-style_image", str(style), "-output_image", str(out), "-image_size", str(size),
           "-gpu", "c", "-backend", "nn", "-model_file", str(model), "-disable_check",
           "-num_iterations", str(iters), "-seed", str(seed), "-print_iter", "0",
           "-save_iter", "0"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_reference(content, style, out, iters, seed, threads, weights):
    cmd = [sys.executable, str(HERE / "neural_style.py"), str(content), str(style), str(out),
           "--iters", str(iters), "--seed", str(seed), "--threads", str(threads),
           "--weights", str(weights)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _image(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--site", required=True, type=Path,
                   help="folder where neural-style 0.5.7 (and torchvision) are installed")
    p.add_argument("--shim", action="store_true",
                   help="import torchvision's Python modules without its compiled operators")
    p.add_argument("--pair", default="coffee-starry")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--folder", default="out/classic")
    p.add_argument("--weights", default=os.environ.get("NSTJAX_WEIGHTS", "weights/vgg19.h5"))
    a = p.parse_args(argv)
    import pairs
    import measures
    import torch

    import nstjax

    (_, c_path, s_path), = pairs.prepare(a.size, Path(a.folder), [a.pair])
    d = c_path.parent
    work = Path(tempfile.mkdtemp(prefix="vgg19-port-"))
    model = work / "vgg19-nstjax.pth"
    torch.save(port_state_dict(reference.read_weights(a.weights)), model)
    shim = _shim(a.site, work / "shim") if a.shim else None
    rows = []
    for seed in a.seeds:
        for tool in ("reference", "neural-style 0.5.7"):
            stem = "reference" if tool == "reference" else "port"
            out = d / (f"{stem}.png" if seed == 0 and stem == "reference" else f"{stem}_s{seed}.png")
            secs_file = Path(str(out) + ".seconds")
            if not out.exists():
                if tool == "reference":
                    secs = run_reference(c_path, s_path, out, a.iters, seed, a.threads, a.weights)
                else:
                    secs = run_port(a.site, shim, model, c_path, s_path, out, a.iters, seed,
                                    a.threads)
                secs_file.write_text(f"{secs:.2f}")
            elif not secs_file.exists():
                secs_file.write_text(f"{json.loads(Path(str(out) + '.json').read_text())['seconds']:.2f}")
            rows.append((tool, seed, out, float(secs_file.read_text())))
    vgg = nstjax.load_vgg19(a.weights)
    content, style = nstjax.load_image(c_path), nstjax.load_image(s_path)
    images = [nstjax.load_image(r[2]) for r in rows]
    scores = nstjax.score(vgg, content, style, images)
    table = {}
    print(f"\n{a.pair} at {a.size} px, {a.iters} iterations")
    print(f"{'tool':<20}{'seed':>5}{'SW':>8}{'patch':>8}{'content':>9}{'seconds':>9}")
    for (tool, seed, _, secs), sc, im in zip(rows, scores, images):
        vals = (sc.style["sliced_wasserstein"], measures.patch_distance(im, content, style),
                sc.content_error)
        table.setdefault(tool, []).append(vals)
        print(f"{tool:<20}{seed:>5}{vals[0]:>8.3f}{vals[1]:>8.3f}{vals[2]:>9.3f}{secs:>9.1f}")
    print(f"\n{'tool':<20}{'':>5}{'SW':>8}{'patch':>8}{'content':>9}   (mean ± half range)")
    for tool, vals in table.items():
        v = np.asarray(vals)
        mean, half = v.mean(0), (v.max(0) - v.min(0)) / 2
        print(f"{tool:<20}{'':>5}" + "".join(f"{m:>5.3f}±{h:.3f}" for m, h in zip(mean, half)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
