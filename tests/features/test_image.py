"""The image feature type: conformance, decoding, the disk cache, channels and size, augmentation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import conformance
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image as PIL

from dlpipe.errors import ConfigError, DataError
from dlpipe.features import REGISTRY
from dlpipe.features import image as image_module
from dlpipe.features.base import Problems
from dlpipe.features.image_encoders import affine_matrix, augment_batch, warp
from dlpipe.spec import FeatureSpec, ModelSpec

IMAGE = REGISTRY["image"]


def write(path: Path, pixels: np.ndarray, **save: object) -> str:
    """Save uint8 pixels (h, w) or (h, w, 3) as an image file; returns the absolute path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(pixels).save(path, **save)
    return str(path.resolve())


def random_images(folder: Path, n: int, shape: tuple[int, ...], seed: int, low: int = 0, high: int = 256) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        write(folder / f"{i}.png", rng.integers(low, high, size=shape, dtype=np.uint8).astype(np.uint8))
        for i in range(n)
    ]


@pytest.fixture
def samples(tmp_path):
    """(train, later, other): later holds 3 good files, a corrupt file, a missing path and a None."""
    train = random_images(tmp_path / "train", 12, (10, 12, 3), seed=0)
    other = random_images(tmp_path / "other", 12, (10, 12, 3), seed=1, low=100)  # brighter: other statistics
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(2).integers(0, 256, 300, dtype=np.uint8).tobytes())
    later = [*train[:3], str(corrupt), str(tmp_path / "nowhere.png"), None]
    return pd.Series(train, name="photo"), pd.Series(later, name="photo"), pd.Series(other, name="photo")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder for this test alone."""
    from dlpipe.features import cache as cache_module

    folder = tmp_path / "cache"
    monkeypatch.setenv("DLPIPE_CACHE", str(folder))
    monkeypatch.setattr(cache_module, "MIN_ROWS", 1)  # these few files count as a data set
    return folder


@pytest.fixture
def decodes(monkeypatch):
    """Counts the files actually decoded (cache hits decode nothing)."""
    calls: list[object] = []
    real = image_module._decode

    def counting(value, size, channels):
        calls.append(value)
        return real(value, size, channels)

    monkeypatch.setattr(image_module, "_decode", counting)
    return calls


def test_conformance(samples):
    train, later, other = samples
    conformance.run_all(IMAGE, train, later, other, bad_rows={3, 4, 5})


def test_bad_values_become_zeros_with_a_reason(samples):
    train, later, _ = samples
    state = IMAGE.fit(train, FeatureSpec())
    problems = Problems()
    out = IMAGE.transform_many(later.to_frame(), {"photo": state}, problems)
    assert out.dtype == np.uint8 and out.shape == (6, 3, 16, 16)
    assert not out[3:].any() and out[:3].any()
    reasons = {p["row"]: p["reason"] for p in problems.listed}
    assert reasons[3].startswith("not a readable image")
    assert reasons[4] == "file not found"
    assert reasons[5] == "missing value"
    assert all(p["column"] == "photo" for p in problems.listed)


def test_second_transform_reads_the_cache_and_a_changed_file_misses_it(samples, cache, decodes):
    train, later, _ = samples
    state = IMAGE.fit(train, FeatureSpec())
    decodes.clear()  # fit reads a sample; only transform's decoding counts here
    first_problems, second_problems = Problems(), Problems()
    first = np.array(IMAGE.transform(later, state, first_problems))
    assert len(decodes) == len(later)
    assert list((cache / "images").glob("*.npy"))
    second = IMAGE.transform(later, state, second_problems)
    assert len(decodes) == len(later), "the second transform decoded again instead of reading the cache"
    np.testing.assert_array_equal(first, second)
    assert second_problems.listed == first_problems.listed  # problems come back from the cache too

    # another image under the same name, with a new modification time: the cached array is stale
    write(Path(later[0]), np.full((10, 12, 3), 7, dtype=np.uint8))
    stat = os.stat(later[0])
    os.utime(later[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = IMAGE.transform(later, state, Problems())
    assert len(decodes) == 2 * len(later)
    assert (third[0] == 7).all() and not np.array_equal(third[0], first[0])
    np.testing.assert_array_equal(third[1:], first[1:])


def test_cache_off_decodes_every_time(samples, monkeypatch, decodes):
    monkeypatch.setenv("DLPIPE_CACHE", "off")
    train, later, _ = samples
    state = IMAGE.fit(train, FeatureSpec())
    decodes.clear()
    IMAGE.transform(later, state)
    IMAGE.transform(later, state)
    assert len(decodes) == 2 * len(later)


def test_other_settings_are_other_cache_entries(samples, cache, decodes):
    train, _, _ = samples
    small = IMAGE.fit(train, FeatureSpec(size=12))
    large = IMAGE.fit(train, FeatureSpec(size=20))
    decodes.clear()
    assert IMAGE.transform(train, small).shape[-2:] == (12, 12)
    assert IMAGE.transform(train, large).shape[-2:] == (20, 20)
    assert len(decodes) == 2 * len(train)


def test_channels_from_the_data(tmp_path):
    grey = random_images(tmp_path / "grey", 6, (9, 9), seed=3)  # 2-D arrays: mode L
    colour = random_images(tmp_path / "colour", 6, (9, 9, 3), seed=4)
    # grey pictures stored as RGB (common for scans and converted photos) count as grey
    rgb_grey = [
        write(tmp_path / "rgb_grey" / f"{i}.png", np.repeat(np.asarray(PIL.open(p))[..., None], 3, 2))
        for i, p in enumerate(grey)
    ]
    assert PIL.open(rgb_grey[0]).mode == "RGB"
    assert IMAGE.fit(pd.Series(grey), FeatureSpec())["channels"] == 1
    assert IMAGE.fit(pd.Series(colour), FeatureSpec())["channels"] == 3
    assert IMAGE.fit(pd.Series(rgb_grey), FeatureSpec())["channels"] == 1
    assert IMAGE.fit(pd.Series(grey[:2] + colour), FeatureSpec())["channels"] == 3  # most are colour
    state = IMAGE.fit(pd.Series(colour), FeatureSpec(channels=1))
    assert state["channels"] == 1 and len(state["mean"]) == len(state["std"]) == 1
    out = IMAGE.transform(pd.Series(colour), state)
    assert out.shape == (6, 1, 16, 16)
    # an RGB file read for a greyscale model is converted, a grey file for a colour model is repeated
    expected = np.asarray(PIL.open(colour[0]).convert("L").resize((16, 16), PIL.Resampling.BICUBIC))
    np.testing.assert_array_equal(out[0, 0], expected)
    grey_as_rgb = IMAGE.transform(pd.Series(grey), IMAGE.fit(pd.Series(grey), FeatureSpec(channels=3)))
    assert grey_as_rgb.shape[1] == 3 and (grey_as_rgb[:, 0] == grey_as_rgb[:, 2]).all()


def test_size_option_and_inferred_size(tmp_path):
    tiny = random_images(tmp_path / "tiny", 4, (8, 8), seed=5)
    big = random_images(tmp_path / "big", 4, (100, 120), seed=6)
    mixed = random_images(tmp_path / "mixed", 4, (30, 40), seed=7)
    assert IMAGE.fit(pd.Series(tiny), FeatureSpec())["size"] == [16, 16]  # clamped up
    assert IMAGE.fit(pd.Series(big), FeatureSpec())["size"] == [64, 64]  # clamped down
    assert IMAGE.fit(pd.Series(mixed), FeatureSpec())["size"] == [35, 35]  # the median side
    state = IMAGE.fit(pd.Series(big), FeatureSpec(size=[20, 24]))
    batch = IMAGE.transform(pd.Series(big), state)
    assert batch.shape == (4, 1, 20, 24)
    encoder = IMAGE.encoder([state], ModelSpec())
    encoder.eval()
    assert encoder(torch.from_numpy(np.ascontiguousarray(batch))).shape == (4, encoder.out_dim)


def test_state_records_the_settings(samples):
    train, _, _ = samples
    default = IMAGE.fit(train, FeatureSpec())
    assert default["augment"] == {"flip": True, "crop": 0.8, "rotate": 10.0}
    assert default["width"] == 32 and default["depth"] == 2
    assert IMAGE.fit(train, FeatureSpec(augment=False))["augment"] is None
    custom = IMAGE.fit(train, FeatureSpec(augment={"flip": False, "rotate": 5}, width=8, depth=1))
    assert custom["augment"] == {"flip": False, "crop": 0.8, "rotate": 5.0}
    encoder = IMAGE.encoder([custom], ModelSpec())
    assert encoder.out_dim == 16  # width doubled by the one stage
    with pytest.raises(ConfigError, match="encoder: cnn"):
        IMAGE.fit(train, FeatureSpec(encoder="bag"))


def test_mean_and_std_come_from_the_training_pixels(tmp_path):
    flat = [write(tmp_path / f"{i}.png", np.full((8, 8), 51 * i, dtype=np.uint8)) for i in range(2)]
    state = IMAGE.fit(pd.Series(flat), FeatureSpec())
    assert state["mean"] == [pytest.approx(0.1, abs=1e-6)]
    assert state["std"] == [pytest.approx(0.1, abs=1e-6)]


def test_fit_refuses_a_column_without_one_readable_image(tmp_path):
    with pytest.raises(DataError, match="readable image"):
        IMAGE.fit(pd.Series([str(tmp_path / "absent.png"), None], name="photo"), FeatureSpec())


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20), dtype=np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = PIL.Image().getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "turned.png"
    PIL.fromarray(pixels).save(path, exif=exif)
    out = image_module._decode(str(path), [20, 10], 1)
    assert out.shape == (1, 20, 10)
    assert out[0, :8].mean() > 200 and out[0, 12:].mean() < 50  # the white half is now on top


def test_sixteen_bit_images_keep_their_range(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    path = write(tmp_path / "deep.png", ramp)
    assert PIL.open(path).mode.startswith("I")
    out = image_module._decode(path, [16, 16], 1)
    assert out.min() < 10 and out.max() > 245 and 100 < out.mean() < 155


def test_augmentation_only_in_training_mode(samples):
    train, _, _ = samples
    batch = torch.from_numpy(np.ascontiguousarray(IMAGE.transform(train, IMAGE.fit(train, FeatureSpec()))))
    augmented = IMAGE.encoder([IMAGE.fit(train, FeatureSpec())], ModelSpec())
    plain = IMAGE.encoder([IMAGE.fit(train, FeatureSpec(augment=False))], ModelSpec())
    with torch.no_grad():
        augmented.train()
        assert not torch.equal(augmented(batch), augmented(batch))
        torch.manual_seed(3)
        first = augmented(batch)
        torch.manual_seed(3)
        assert torch.equal(first, augmented(batch)), "augmentation must draw from the global torch RNG"
        plain.train()  # without augmentation, training mode is deterministic: the difference above is augmentation
        assert torch.equal(plain(batch), plain(batch))
        augmented.eval()
        assert torch.equal(augmented(batch), augmented(batch))


def test_flips_alone_mirror_some_images_and_keep_the_rest():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 6, 9)
    out = augment_batch(x, flip=True, crop=1.0, rotate=0.0)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all()
    assert 10 < int(mirrored.sum()) < 54
    assert augment_batch(x, flip=False, crop=1.0, rotate=0.0) is x


def test_affine_geometry():
    one, zero = torch.ones(1), torch.zeros(1)
    square = torch.arange(36.0).view(1, 1, 6, 6)
    quarter = torch.full((1,), math.pi / 2)
    torch.testing.assert_close(warp(square, affine_matrix(one, one, zero, zero, zero, one, 1.0)), square)
    torch.testing.assert_close(warp(square, affine_matrix(one, one, zero, zero, zero, -one, 1.0)), square.flip(-1))
    torch.testing.assert_close(
        warp(square, affine_matrix(one, one, zero, zero, quarter, one, 1.0)), square.rot90(1, (2, 3))
    )
    wide = torch.arange(35.0).view(1, 1, 5, 7)
    half_turn = torch.full((1,), math.pi)
    torch.testing.assert_close(
        warp(wide, affine_matrix(one, one, zero, zero, half_turn, one, 5 / 7)), wide.flip(-1).flip(-2)
    )
    # in pixel units the rotation of a non-square image is orthogonal: rotated, not sheared
    theta = affine_matrix(one, one, zero, zero, torch.full((1,), 0.3), one, 5 / 7)[0, :, :2]
    pixels = torch.diag(torch.tensor([7.0, 5.0]))
    rotation = pixels @ theta @ torch.linalg.inv(pixels)
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(2))
    # a centred crop of 40% of each side shows only the image's middle
    framed = torch.zeros(1, 1, 16, 16)
    framed[..., 4:12, 4:12] = 1.0
    crop = torch.full((1,), 0.4)
    torch.testing.assert_close(
        warp(framed, affine_matrix(crop, crop, zero, zero, zero, one, 1.0)), torch.ones(1, 1, 16, 16)
    )


def test_random_crops_and_rotations_stay_near_the_image():
    torch.manual_seed(1)
    x = torch.rand(32, 1, 12, 12)
    out = augment_batch(x, flip=True, crop=0.8, rotate=10.0)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert out.min() >= 0 and out.max() <= 1  # bilinear with border padding never leaves the value range


def test_the_module_imports_neither_pillow_nor_torch():
    code = "import sys, dlpipe.features.image; assert not {'PIL', 'torch'} & set(sys.modules), sys.modules.keys()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_small_pipeline_trains_and_predicts_with_a_missing_file(tmp_path):
    from dlpipe.package import load_model
    from dlpipe.pipeline import Pipeline

    rng = np.random.default_rng(8)
    rows = []
    for i in range(60):
        pixels = rng.integers(0, 60, size=(12, 12), dtype=np.uint8)
        label = "vertical" if i % 2 else "horizontal"
        if label == "vertical":
            pixels[:, 4:8] = 250
        else:
            pixels[4:8, :] = 250
        rows.append({"img": write(tmp_path / "img" / f"{i}.png", pixels), "label": label})
    config = {
        "name": "bars",
        "problem": {"task": "classification", "target": "label", "metric": "accuracy"},
        "features": {"img": {"type": "image", "width": 8, "depth": 1, "augment": {"flip": False, "rotate": 0}}},
        "model": {"hidden": 16},
        "training": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01, "early_stopping": 0},
    }
    result = Pipeline.from_dict(config, data=pd.DataFrame(rows)).run(tmp_path / "runs")
    assert result.metrics["test"]["accuracy"] >= 0.8
    model = load_model(result.folder)
    frame = pd.DataFrame({"img": [rows[0]["img"], rows[1]["img"], str(tmp_path / "gone.png")]})
    predicted = model.predict(frame)
    assert list(predicted["prediction"][:2]) == ["horizontal", "vertical"]
    assert pd.isna(predicted["prediction"][2]) and predicted["problem"][2] == "img: file not found"


def test_the_digits_example_writes_greyscale_pngs_once(tmp_path):
    import importlib.util

    from conftest import EXAMPLES

    spec = importlib.util.spec_from_file_location("make_digits", EXAMPLES / "digits" / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.make_data(tmp_path, limit=20) == 20
    assert module.make_data(tmp_path, limit=20) == 0  # idempotent
    files = sorted(tmp_path.glob("*/*.png"))
    assert len(files) == 20 and {f.parent.name for f in files} <= set("0123456789")
    with PIL.open(files[0]) as first:
        assert first.mode == "L" and first.size == (8, 8)
    assert max(np.asarray(PIL.open(f)).max() for f in files) == 255  # 0..16 spread over 0..255


def test_a_few_rows_are_decoded_without_a_cache_entry(samples, tmp_path, monkeypatch):
    """A served request or a short predict call must not leave a cache file per call."""
    monkeypatch.setenv("DLPIPE_CACHE", str(tmp_path / "few"))
    train, later, _ = samples
    state = IMAGE.fit(train, FeatureSpec())
    IMAGE.transform_many(later.to_frame(), {"photo": state}, Problems())
    assert not list((tmp_path / "few").rglob("*.npy"))


def test_image_content_sent_as_bytes_decodes_like_the_file_and_is_never_cached(samples, tmp_path, monkeypatch):
    """What the server receives: the file's bytes, not a path (it never opens a path a request names)."""
    monkeypatch.setenv("DLPIPE_CACHE", str(tmp_path / "served"))
    train, _, _ = samples
    state = IMAGE.fit(train, FeatureSpec())
    paths = pd.concat([train] * 3, ignore_index=True)  # 36 rows: over the caching threshold
    content = paths.map(lambda p: Path(p).read_bytes())
    problems = Problems()
    from_bytes = IMAGE.transform_many(content.to_frame(), {"photo": state}, problems)
    assert not problems.rows and not list((tmp_path / "served").rglob("*.npy"))
    np.testing.assert_array_equal(from_bytes, IMAGE.transform_many(paths.to_frame(), {"photo": state}, Problems()))
    assert list((tmp_path / "served").rglob("*.npy"))  # paths are cached: the check above can fail
    bad = pd.Series([b"not an image", b"", content[0]], name="photo")
    problems = Problems()
    out = IMAGE.transform_many(bad.to_frame(), {"photo": state}, problems)
    assert set(problems.rows) == {0, 1} and "<12 bytes>" in str(problems.listed) and "0 bytes" in problems.rows[1]
    assert out[:2].max() == 0 and out[2].max() > 0
