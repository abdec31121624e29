"""The synthesiser: exact masks, additive optical density, COCO round trip, determinism, presets."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirewatch import coco
from wirewatch.errors import ConfigError, InputError
from wirewatch.synth import (
    SynthConfig,
    generate,
    preset_config,
    preset_names,
    read_manifest,
    sample_seed,
    with_overrides,
    write_dataset,
)
from wirewatch.synth.dataset import window_rle
from wirewatch.synth.generate import _shot_noise

PRESETS = ("ptychography", "realistic", "stxm", "sem")


@pytest.fixture(scope="module")
def samples() -> dict[str, list]:
    return {name: [generate(preset_config(name), seed) for seed in range(3)] for name in PRESETS}


def _far_from_wires(sample, margin: int = 7) -> np.ndarray:
    union = sample.masks.any(axis=0).astype(np.uint8)
    return ~cv2.dilate(union, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)).astype(bool)


def _hf_fraction(image: np.ndarray, cutoff: float) -> float:
    """Share of the (non-DC) spectral power above ``cutoff`` cycles per pixel."""
    x = image.astype(np.float64) - image.mean()
    power = np.abs(np.fft.fft2(x)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(x.shape[0]), np.fft.fftfreq(x.shape[1]), indexing="ij")
    return float(power[np.hypot(fy, fx) > cutoff].sum() / power.sum())


# --- the sample itself -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_sample_arrays_and_wires_agree(samples, name):
    for s in samples[name]:
        n = len(s.wires)
        assert 10 <= n <= 40, n  # tens of wires (some near the border may be dropped)
        assert s.image.dtype == np.uint8 and s.image.shape == (512, 512)
        assert s.od.dtype == np.float32 and s.thickness.dtype == np.float32
        assert s.masks.dtype == bool and s.masks.shape == (n, 512, 512)
        for w, m in zip(s.wires, s.masks, strict=True):
            assert w.area_px == int(m.sum()) >= preset_config(name).wires.min_area_px
            assert 0.0 <= w.angle_deg < 180.0
            assert w.cross_section in ("rectangular", "hexagonal")
            assert 0.0 <= w.tilt_deg <= preset_config(name).wires.max_tilt_deg + 1e-9
            assert w.projected_length == pytest.approx(w.length * math.cos(math.radians(w.tilt_deg)))


@pytest.mark.parametrize("name", PRESETS)
def test_masks_cover_every_wire_pixel_and_no_background(samples, name):
    for s in samples[name]:
        material = s.thickness > 0  # before blur and noise
        union = s.masks.any(axis=0)
        assert np.array_equal(union, material), "a wire pixel without mask, or a mask on background"
        assert all(m.any() for m in s.masks)


def test_masks_are_full_footprints_overlaps_belong_to_every_wire(samples):
    overlaps = sum(int((s.masks.sum(axis=0) >= 2).sum()) for s in samples["ptychography"])
    assert overlaps > 500  # the scenes do have crossings, and those pixels are in several masks


def test_later_wires_rest_on_earlier_ones(samples):
    tilts = [w.tilt_deg for s in samples["ptychography"] for w in s.wires]
    assert sum(t > 0 for t in tilts) >= 10  # crossing wires are tilted out of plane
    assert max(tilts) <= 12.0 + 1e-9


@pytest.mark.parametrize("name", ["ptychography", "realistic", "stxm"])
def test_overlaps_are_brighter_than_either_wire_alone(samples, name):
    kernel = np.ones((7, 7), np.uint8)  # stay 3 px inside regions: the blur mixes their edges
    compared = brighter = 0
    for s in samples[name]:
        count = s.masks.sum(axis=0)
        for a in range(len(s.masks)):
            for b in range(a + 1, len(s.masks)):
                both = s.masks[a] & s.masks[b] & (count == 2)
                inner = cv2.erode(both.astype(np.uint8), kernel).astype(bool)
                if inner.sum() < 20:
                    continue
                alone = [cv2.erode((s.masks[i] & (count == 1)).astype(np.uint8), kernel).astype(bool)
                         for i in (a, b)]
                if min(x.sum() for x in alone) < 20:
                    continue
                compared += 1
                overlap = float(s.od[inner].mean())
                brighter += overlap > max(float(s.od[x].mean()) for x in alone)
    assert compared >= 5
    assert brighter == compared


def test_orientation_follows_screen_convention():
    # Straight prismatic wires, no blur: each mask's principal axis is the wire's angle.
    cfg = with_overrides(preset_config("ptychography"), {"blur_sigma": 0.0, "wires.max_tilt_deg": 0.0,
                                                         "wires.count": {"min": 8, "max": 8}})
    s = generate(cfg, 11)
    checked = 0
    for w, m in zip(s.wires, s.masks, strict=True):
        if w.length < 4 * w.width or w.area_px < 0.9 * w.length * w.width:  # skip stubs and border-cut wires
            continue
        ys, xs = np.nonzero(m)
        x, y = xs - xs.mean(), -(ys - ys.mean())  # y up, as seen on screen
        theta = 0.5 * math.degrees(math.atan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())) % 180
        diff = abs(theta - w.angle_deg) % 180
        assert min(diff, 180 - diff) < 1.5, (theta, w.angle_deg)
        checked += 1
    assert checked >= 3


def test_orientation_concentration_sets_alignment():
    rng = np.random.default_rng(0)
    for kappa in (0.0, 2.0, 8.0):
        cfg = with_overrides(preset_config("ptychography"), {"wires.orientation": {"mean_deg": 30, "kappa": kappa}})
        theta = np.radians(cfg.wires.orientation.sample(rng, 20000))
        z = np.exp(2j * theta).mean()
        order = abs(z)
        from scipy.special import i0, i1

        assert order == pytest.approx(i1(kappa) / i0(kappa), abs=0.02)
        if kappa > 0:
            assert math.degrees(np.angle(z)) / 2 == pytest.approx(30, abs=1.5)


def test_length_and_width_follow_the_config():
    cfg = with_overrides(preset_config("ptychography"), {"wires.length": {"kind": "uniform", "low": 80, "high": 90},
                                                         "wires.width": {"kind": "fixed", "low": 6, "high": 6}})
    s = generate(cfg, 2)
    assert all(80 <= w.length <= 90 and w.width == 6 for w in s.wires)


def test_size_scales_the_preset_geometry():
    big, small = preset_config("ptychography"), preset_config("ptychography", size=256)
    assert small.size == 256
    assert small.wires.length.high == big.wires.length.high / 2
    assert small.wires.width.low == big.wires.width.low / 2
    assert small.blur_sigma == big.blur_sigma / 2
    s = generate(small, 0)
    assert s.image.shape == (256, 256) and s.masks.shape[1:] == (256, 256)


def test_generate_is_deterministic_and_seed_dependent():
    cfg = preset_config("realistic", size=128)
    a, b, c = generate(cfg, 5), generate(cfg, 5), generate(cfg, 6)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks) and a.wires == b.wires
    assert not np.array_equal(a.image, c.image)


def test_realistic_wires_are_not_all_prisms(samples):
    wires = [w for s in samples["realistic"] for w in s.wires]
    assert sum(w.taper > 0 for w in wires) == len(wires)  # every wire tapers a little
    assert sum(w.bend > 0 for w in wires) == len(wires)
    assert sum(w.branches > 0 for w in wires) >= 3
    assert sum(w.neck for w in wires) >= 5
    assert sum(w.agglomerate >= 0 for w in wires) >= 10
    assert all(w.taper == w.bend == w.branches == 0 and not w.neck and w.agglomerate == -1
               for s in samples["ptychography"] for w in s.wires)


def test_agglomerated_wires_sit_close_together(samples):
    for s in samples["realistic"]:
        by_cluster: dict[int, list] = {}
        for w in s.wires:
            by_cluster.setdefault(w.agglomerate, []).append(w.centre)
        for cluster, centres in by_cluster.items():
            if cluster < 0 or len(centres) < 4:
                continue
            spread = np.asarray(centres).std(axis=0).mean()
            assert spread < 2.5 * preset_config("realistic").wires.agglomerates.radius
            scattered = np.asarray(by_cluster.get(-1, centres)).std(axis=0).mean()
            assert spread < scattered


@pytest.mark.parametrize("counts", [0.5, 5.0, 29.0, 31.0, 400.0])
def test_shot_noise_is_poisson_like(counts):
    # Exact Poisson below 30 expected counts, the normal approximation above: mean = variance either way.
    rng = np.random.default_rng(1)
    x = _shot_noise(rng, np.full(200_000, counts / 400.0, np.float32), 400.0) * 400.0
    assert x.mean() == pytest.approx(counts, rel=0.01, abs=0.01)
    assert x.var() == pytest.approx(counts, rel=0.03)
    assert x.min() >= 0


# --- preset characteristics, measured -----------------------------------------------------------


def test_ptychography_is_noise_free_on_a_black_background(samples):
    for s in samples["ptychography"]:
        far = _far_from_wires(s)
        assert far.mean() > 0.3
        assert s.image[far].max() == 0  # no offset, gradient or noise


def test_realistic_has_noise_and_an_uneven_background(samples):
    for s in samples["realistic"]:
        far = _far_from_wires(s)
        img = s.image.astype(np.float64)
        residual = img - cv2.GaussianBlur(img, (0, 0), 3)
        assert residual[far].std() > 3.0  # Poisson + Gaussian(4 grey levels)
        ys, xs = np.nonzero(far)
        coef = np.linalg.lstsq(np.c_[xs, ys, np.ones_like(xs)], img[far], rcond=None)[0]
        assert np.hypot(coef[0], coef[1]) * 512 > 5.0  # grey levels of gradient across the frame
        assert np.median(img[far]) > 10  # background offset


def test_stxm_has_low_effective_resolution(samples):
    # The same scenes rendered at full resolution keep far more power above 1/12 cycle/px.
    fine_cfg = with_overrides(preset_config("stxm"), {"coarse_factor": 1})
    for seed, coarse in enumerate(samples["stxm"]):
        fine = generate(fine_cfg, seed)
        assert np.array_equal(fine.masks, coarse.masks)
        assert _hf_fraction(coarse.image, 1 / 12) < 0.5 * _hf_fraction(fine.image, 1 / 12)
        assert _hf_fraction(coarse.image, 1 / 12) < _hf_fraction(samples["ptychography"][seed].image, 1 / 12)


def test_sem_has_grey_background_and_bright_edges(samples):
    for s in samples["sem"]:
        far = _far_from_wires(s)
        assert 70 < np.median(s.image[far]) < 130  # grey, not black
        union = s.masks.any(axis=0).astype(np.uint8)
        interior = cv2.erode(union, np.ones((5, 5), np.uint8)).astype(bool)
        edge = union.astype(bool) & ~interior
        assert s.image[edge].mean() > s.image[interior].mean() + 10  # edge brightening
    # Not additive: the top wire hides the one below, so crossings are not brighter than wires.
    s = samples["sem"][0]
    count = s.masks.sum(axis=0)
    assert s.od[count >= 2].mean() < s.od[count == 1].mean() * 1.3


# --- the dataset folder ---------------------------------------------------------------------------


def test_window_rle_equals_pycocotools_encoding():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 9, 2))
        m = rng.random((h, w)) < rng.random()
        r0, c0 = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
        r1, c1 = int(rng.integers(r0, h + 1)), int(rng.integers(c0, w + 1))
        mm = np.zeros_like(m)
        mm[r0:r1, c0:c1] = m[r0:r1, c0:c1]
        rle, bbox, area = window_rle(mm, (r0, r1, c0, c1))
        assert rle == coco.encode_mask(mm) and bbox == coco.mask_bbox(mm) and area == int(mm.sum())


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    write_dataset(out, preset_config("realistic", size=128), count=6, seed=7, workers=1, tiff=True,
                  preview="preview.png")
    return out


def test_dataset_layout_and_manifest(dataset_dir):
    names = sorted(p.name for p in dataset_dir.iterdir())
    assert names == ["images", "manifest.json", "od", "preview.png", "train.json", "val.json"]
    assert sorted(p.name for p in (dataset_dir / "images").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert not list(dataset_dir.rglob(".*tmp*"))
    m = read_manifest(dataset_dir)
    assert m["seed"] == 7 and m["count"] == 6 and m["counts"] == {"train": 5, "val": 1}
    assert m["package_version"] and m["config"]["name"] == "realistic"
    assert SynthConfig.model_validate(m["config"]) == preset_config("realistic", size=128)
    import tifffile

    od = tifffile.imread(dataset_dir / "od" / "000002.tif")
    assert od.dtype == np.float32 and np.array_equal(od, generate(preset_config("realistic", size=128),
                                                                   sample_seed(7, 2)).od)


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_coco_loads_and_decoded_masks_equal_the_generator(dataset_dir):
    from pycocotools.coco import COCO

    cfg = preset_config("realistic", size=128)
    seen = 0
    for part in ("train", "val"):
        with contextlib.redirect_stdout(io.StringIO()):
            api = COCO(str(dataset_dir / f"{part}.json"))
        assert api.loadCats(api.getCatIds()) == [coco.CATEGORY]
        for img in api.loadImgs(api.getImgIds()):
            index = int(img["file_name"].split(".")[0])
            assert img["seed"] == sample_seed(7, index)
            sample = generate(cfg, img["seed"])
            png = cv2.imread(str(dataset_dir / "images" / img["file_name"]), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint8 and np.array_equal(png, sample.image)
            anns = api.loadAnns(api.getAnnIds(imgIds=[img["id"]]))
            assert len(anns) == len(sample.wires)
            for ann, mask, wire in zip(anns, sample.masks, sample.wires, strict=True):
                assert np.array_equal(api.annToMask(ann).astype(bool), mask)
                assert ann["area"] == int(mask.sum()) and ann["bbox"] == coco.mask_bbox(mask)
                assert ann["iscrowd"] == 0 and ann["category_id"] == 1
                assert ann["wire"]["length_px"] == pytest.approx(wire.length, abs=1e-3)
                assert ann["wire"]["angle_deg"] == pytest.approx(wire.angle_deg, abs=1e-3)
            seen += 1
    assert seen == 6
    ids = [a["id"] for p in ("train", "val") for a in json.loads((dataset_dir / f"{p}.json").read_text())["annotations"]]
    assert len(ids) == len(set(ids))


def test_same_seed_gives_identical_bytes_whatever_the_workers(dataset_dir, tmp_path):
    again = tmp_path / "again"
    write_dataset(again, preset_config("realistic", size=128), count=6, seed=7, workers=2, tiff=True,
                  preview="preview.png")
    assert _hashes(again) == _hashes(dataset_dir)
    other = tmp_path / "other"
    write_dataset(other, preset_config("realistic", size=128), count=6, seed=8, workers=1)
    assert _hashes(other)["images/000000.png"] != _hashes(dataset_dir)["images/000000.png"]


def test_no_split_writes_all_json(tmp_path):
    write_dataset(tmp_path / "d", preset_config("ptychography", size=64), count=3, seed=0, split=None)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["all.json", "images", "manifest.json"]


def test_interrupted_run_never_looks_complete(tmp_path):
    def boom(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        write_dataset(out, preset_config("ptychography", size=64), count=5, seed=0, progress=boom)
    assert not (out / "manifest.json").exists()
    with pytest.raises(InputError, match="manifest"):
        read_manifest(out)
    with pytest.raises(InputError, match="--overwrite"):
        write_dataset(out, preset_config("ptychography", size=64), count=5, seed=0)
    write_dataset(out, preset_config("ptychography", size=64), count=2, seed=0, overwrite=True)
    assert read_manifest(out)["count"] == 2
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png"]


# --- bad options --------------------------------------------------------------------------------


def test_unknown_preset_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed presets: ptychography, realistic, sem, stxm"):
        preset_config("tem")
    assert preset_names() == sorted(PRESETS)


def test_overrides_are_validated_and_name_the_key():
    with pytest.raises(ConfigError, match=r"wires\.colour: unknown key; allowed keys: .*orientation"):
        with_overrides(preset_config("ptychography"), {"wires.colour": 1})
    with pytest.raises(ConfigError, match=r"wires\.count"):
        with_overrides(preset_config("ptychography"), {"wires.count": {"min": 5, "max": 2}})
    with pytest.raises(ConfigError, match="blur_sigma"):
        with_overrides(preset_config("ptychography"), {"blur_sigma": -1})
    cfg = with_overrides(preset_config("ptychography"), {"wires.orientation.kappa": 4.0})
    assert cfg.wires.orientation.kappa == 4.0 and cfg.wires.length == preset_config("ptychography").wires.length


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": 0}, "--count"), ({"workers": 0}, "--workers"), ({"split": 1.0}, "--split"), ({"seed": -1}, "--seed"),
])
def test_write_dataset_rejects_bad_options(tmp_path, kwargs, message):
    args = {"count": 2, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        write_dataset(tmp_path / "d", preset_config("ptychography", size=64), **args)


# --- properties over random configurations -------------------------------------------------------


@st.composite
def _configs(draw) -> SynthConfig:
    size = draw(st.sampled_from([48, 64, 80]))
    lo_len = draw(st.floats(4, 40))
    lo_w = draw(st.floats(0.5, 6))
    n_min = draw(st.integers(0, 12))
    over = {
        "wires.count": {"min": n_min, "max": n_min + draw(st.integers(0, 12))},
        "wires.length": {"kind": draw(st.sampled_from(["uniform", "lognormal", "fixed"])), "low": lo_len,
                         "high": lo_len + draw(st.floats(0, 60)), "median": None},
        "wires.width": {"kind": "uniform", "low": lo_w, "high": lo_w + draw(st.floats(0, 6))},
        "wires.hexagonal_fraction": draw(st.floats(0, 1)),
        "wires.orientation": {"mean_deg": draw(st.floats(-360, 360)), "kappa": draw(st.floats(0, 20))},
        "wires.max_tilt_deg": draw(st.floats(0, 30)),
        "wires.min_area_px": draw(st.integers(1, 10)),
        "wires.shape": {
            "taper": draw(st.none() | st.just({"low": 0.01, "high": 0.5})),
            "bend": draw(st.none() | st.just({"low": 0.01, "high": 0.15})),
            "roughness": draw(st.floats(0, 0.3)),
            "branch_probability": draw(st.floats(0, 1)),
            "neck_probability": draw(st.floats(0, 1)),
        },
        "wires.agglomerates": {"count": {"min": 0, "max": draw(st.integers(0, 3))}, "fraction": draw(st.floats(0, 1)),
                               "radius": draw(st.floats(1, 30))},
        "contrast.mode": draw(st.sampled_from(["optical_density", "sem"])),
        "blur_sigma": draw(st.floats(0, 3)),
        "coarse_factor": draw(st.integers(1, 6)),
        "background": {"offset": draw(st.floats(0, 0.5)), "gradient": draw(st.floats(0, 0.5)),
                       "bumps": draw(st.floats(0, 0.2))},
        "noise": {"photons": draw(st.none() | st.floats(1, 1000)), "gaussian_sigma": draw(st.floats(0, 20))},
    }
    return with_overrides(preset_config("ptychography", size), over)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=_configs(), seed=st.integers(0, 2**32))
def test_invariants_hold_for_any_configuration(cfg, seed):
    s = generate(cfg, seed)
    n = cfg.size
    assert s.image.shape == s.od.shape == s.thickness.shape == (n, n) and s.image.dtype == np.uint8
    assert s.masks.shape == (len(s.wires), n, n) and len(s.windows) == len(s.wires)
    assert np.array_equal(s.masks.any(axis=0), s.thickness > 0)
    assert np.isfinite(s.od).all()
    for w, m, (r0, r1, c0, c1) in zip(s.wires, s.masks, s.windows, strict=True):
        assert w.area_px == int(m.sum()) >= cfg.wires.min_area_px
        assert int(m[r0:r1, c0:c1].sum()) == w.area_px  # the window holds the whole mask
        rle, bbox, area = window_rle(m, (r0, r1, c0, c1))
        assert rle == coco.encode_mask(m) and bbox == coco.mask_bbox(m) and area == w.area_px
    again = generate(cfg, seed)
    assert np.array_equal(again.image, s.image) and np.array_equal(again.masks, s.masks)
