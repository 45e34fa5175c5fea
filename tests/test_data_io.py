"""The HDF5 contract: layout, attributes, hashes, determinism, atomic writing, reading
(native and Fuel layouts) and the torch Dataset."""

from __future__ import annotations

import hashlib
import pickle
import sys

import h5py
import numpy as np
import pytest
import torch

import tagdata
from tagdata import UserError, open_dataset, texture_mnist
from tagdata.build import make_dataset, split_sources
from tagdata.specs import resolve_spec, spec_to_dict, with_overrides
from tagdata.writer import write_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORDER = ("images", "masks", "segmentation", "labels", "textures")
# Pinned so that a change of generator, random streams or numpy shows up here: the same
# spec and seed must give the same bytes on every machine.
GOLDEN_SHAPES_TEST = "eeb7c2036f0392e6287643bf528e998435cb8d6fc3f5f710fa811f15583e6c23"
GOLDEN_BANK = "8f44ac527e7e98471eb6466ea6a8a33718da85518ea6bd16db2ace57b264aaea"


def small_shapes(**sizes):
    defaults = dict(train=64, valid=16, test=40, single=12)
    return with_overrides(resolve_spec("shapes"), **{**defaults, **sizes})


def independent_hash(group: h5py.Group) -> str:
    lines = ""
    for name in ORDER:
        if name in group:
            lines += f"{name}:{hashlib.sha256(np.ascontiguousarray(group[name][...]).tobytes()).hexdigest()}\n"
    return hashlib.sha256(lines.encode()).hexdigest()


def test_layout_and_attributes(shapes_file):
    with h5py.File(shapes_file, "r") as f:
        assert sorted(f) == ["single", "test", "train", "valid"]
        attrs = f.attrs
        assert attrs["format"] == "tagdata" and attrs["format_version"] == 1
        assert attrs["name"] == "shapes" and attrs["kind"] == "shapes" and attrs["seed"] == 1
        assert attrs["tagdata_version"] == tagdata.__version__
        assert attrs["splits"] == "train,valid,test,single"
        assert tomllib.loads(attrs["spec"]) == spec_to_dict(small_shapes())
        train = f["train"]
        expected = {"images": ((64, 1, 20, 20), "<f4"), "masks": ((64, 4, 20, 20), "<f4"),
                    "segmentation": ((64, 20, 20), "|u1"), "labels": ((64, 3), "<i8")}
        assert {k: (v.shape, v.dtype.str) for k, v in train.items()} == expected
        for name in ("images", "masks", "segmentation"):
            assert train[name].chunks == (1,) + train[name].shape[1:]
            assert train[name].compression == "gzip"
        assert train["labels"].chunks == (64, 3)
        assert f["single"]["masks"].shape == (12, 2, 20, 20) and f["single"]["labels"].shape == (12, 1)
        images = train["images"][...]
        assert images.min() >= 0 and images.max() <= 1
        for split in ("train", "valid", "test", "single"):
            assert attrs[f"sha256_{split}"] == f[split].attrs["sha256"] == independent_hash(f[split])
            for name, dataset in f[split].items():
                assert dataset.attrs["sha256"] == hashlib.sha256(dataset[...].tobytes()).hexdigest()


def test_texture_layout(texture_file):
    with h5py.File(texture_file, "r") as f:
        assert f.attrs["kind"] == "texture-mnist" and f.attrs["splits"] == "train,valid,test"
        test = f["test"]
        assert {k: (v.shape, v.dtype.str) for k, v in test.items()} == {
            "images": ((16, 1, 28, 28), "<f4"), "masks": ((16, 3, 28, 28), "<f4"),
            "segmentation": ((16, 28, 28), "|u1"), "labels": ((16, 2), "<i8"),
            "textures": ((16, 3), "<i8")}
        assert f.attrs["sha256_test"] == independent_hash(test)


def test_golden_hashes(tmp_path):
    hashes = make_dataset(small_shapes(), tmp_path / "s.h5")
    bank = texture_mnist.spec_bank(resolve_spec("texture-mnist2"))
    assert {"test": hashes["test"], "bank": hashlib.sha256(bank.tobytes()).hexdigest()} == {
        "test": GOLDEN_SHAPES_TEST, "bank": GOLDEN_BANK}


def test_golden_texture_hashes(texture_file):
    with open_dataset(texture_file) as f:  # tiny MNIST files made by the fixture
        assert f.hashes["test"] == "11723534f0587c9eedb8c4013c0aee9413f5296a2e63ce5c150b6321e56462c6"


@pytest.mark.parametrize("name, digest", [
    ("texture-mnist1", "827aa554b1e00f930ef6dd3c826a8fe2f6ea8a57caa58bca271ac8333eb8ec14"),
    ("texture-mnist2", "d71e1a4a936a287c69d62706cefbc59f20bbb684b5db45929a8e8c40c2acd7be"),
])
def test_golden_real_mnist_hashes(tmp_path, real_mnist_dir, name, digest):
    spec = with_overrides(resolve_spec(name), train=0, valid=0, test=500)
    assert make_dataset(spec, tmp_path / "t.h5", mnist_dir=real_mnist_dir) == {"test": digest}


def test_determinism_block_size_seed_and_split_independence(tmp_path, texture_spec, tiny_mnist_dir):
    base = make_dataset(small_shapes(), tmp_path / "a.h5")
    assert make_dataset(small_shapes(), tmp_path / "b.h5", block_size=7) == base
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        for split in a:
            for name in a[split]:
                assert np.array_equal(a[split][name][...], b[split][name][...])
    reseeded = make_dataset(with_overrides(small_shapes(), seed=2), tmp_path / "c.h5")
    assert all(reseeded[s] != base[s] for s in base)
    resized = make_dataset(small_shapes(train=100), tmp_path / "d.h5")
    assert resized["train"] != base["train"]
    assert {s: resized[s] for s in ("valid", "test", "single")} == {s: base[s] for s in ("valid", "test", "single")}

    spec = texture_spec("texture-mnist2")
    first = make_dataset(spec, tmp_path / "t1.h5", mnist_dir=tiny_mnist_dir)
    assert make_dataset(spec, tmp_path / "t2.h5", mnist_dir=tiny_mnist_dir, block_size=5) == first
    other = make_dataset(texture_spec("texture-mnist2", seed=99), tmp_path / "t3.h5", mnist_dir=tiny_mnist_dir)
    assert all(other[s] != first[s] for s in first)
    fewer = make_dataset(texture_spec("texture-mnist2", train=10), tmp_path / "t4.h5", mnist_dir=tiny_mnist_dir)
    assert fewer["test"] == first["test"] and fewer["valid"] == first["valid"]


def test_empty_splits_are_left_out(tmp_path):
    make_dataset(small_shapes(single=0, valid=0), tmp_path / "s.h5")
    with open_dataset(tmp_path / "s.h5") as f:
        assert f.splits == ("train", "test")


def test_output_checks_and_atomic_writing(tmp_path):
    out = tmp_path / "s.h5"
    with pytest.raises(UserError, match="output directory .* does not exist"):
        make_dataset(small_shapes(), tmp_path / "missing" / "s.h5")
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists \\(pass --overwrite"):
        make_dataset(small_shapes(), out)
    assert out.read_bytes() == b"keep me"

    sources = split_sources(small_shapes())
    broken = sources[1].blocks

    def failing(block_size):
        yield next(broken(block_size))
        raise RuntimeError("generator failed")

    sources[1] = type(sources[1])(sources[1].name, sources[1].length, sources[1].arrays, failing)
    with pytest.raises(RuntimeError, match="generator failed"):
        write_file(out, {}, sources, overwrite=True, block_size=4)
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # no temporary left behind
    make_dataset(small_shapes(), out, overwrite=True)
    with open_dataset(out) as f:
        assert len(f["test"]) == 40


def test_reader_interface(shapes_file):
    with open_dataset(shapes_file) as f:
        assert (f.name, f.kind, f.layout) == ("shapes", "shapes", "tagdata")
        assert f.splits == ("train", "valid", "test", "single")
        assert f.spec["splits"]["test"] == 40 and f.hashes["test"] == f.attrs["sha256_test"]
        split = f["test"]
        assert len(split) == 40 and split.textures is None
        data = split.read()
        assert set(data) == {"images", "masks", "segmentation", "labels"}
        with h5py.File(shapes_file, "r") as raw:
            masks = raw["test/masks"][...]
        np.testing.assert_array_equal(data["masks"], masks)
        np.testing.assert_array_equal(split.read(5, 9)["masks"], masks[5:9])
        view = split.masks
        assert view.shape == masks.shape and view.dtype == np.float32 and len(view) == 40
        for key in (3, -1, slice(2, 30, 5), slice(None, None, -3), [7, 2, 7], np.array([0, 39]),
                    np.arange(40) % 3 == 0, (slice(1, 4), 2), (5, 0, slice(0, 3)), (Ellipsis, 0), slice(10, 2)):
            np.testing.assert_array_equal(view[key], masks[key], err_msg=str(key))
        np.testing.assert_array_equal(np.asarray(view), masks)
        with pytest.raises(IndexError):
            view[40]
        with pytest.raises(IndexError):
            view[[0, 41]]
        assert split.compute_hash() == f.hashes["test"]
        with pytest.raises(UserError, match="has no split 'nope' \\(it has train, valid, test, single\\)"):
            f["nope"]


def test_reader_errors(tmp_path, shapes_file):
    with pytest.raises(UserError, match="does not exist"):
        open_dataset(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        open_dataset(junk)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(UserError, match="neither a tagdata file nor a Fuel file"):
        open_dataset(tmp_path / "other.h5")
    broken = tmp_path / "broken.h5"
    broken.write_bytes(shapes_file.read_bytes())
    with h5py.File(broken, "a") as f:
        del f["valid/masks"]
    with pytest.raises(UserError, match="split 'valid' lacks masks"):
        open_dataset(broken)


def test_fuel_shapes(tmp_path, shapes_file, fuel_writer):
    with open_dataset(shapes_file) as native:
        data = {s: native[s].read() for s in ("train", "valid", "test")}
    fuel_writer(tmp_path / "shapes_ref.hdf5", data, "shapes")
    with open_dataset(tmp_path / "shapes_ref.hdf5") as fuel:
        assert (fuel.kind, fuel.layout, fuel.splits) == ("shapes", "fuel", ("train", "valid", "test"))
        assert fuel.spec["splits"] == {"train": 64, "valid": 16, "test": 40}
        for name, expected in data.items():
            got = fuel[name].read()
            for key in ("images", "segmentation", "labels"):
                np.testing.assert_array_equal(got[key], expected[key])
                assert got[key].dtype == expected[key].dtype
            np.testing.assert_allclose(got["masks"].sum(axis=1), 1, atol=1e-6)
            overlap = (expected["segmentation"] == 255) & (expected["images"][:, 0] == 1)
            same = np.broadcast_to(~overlap[:, None], got["masks"].shape)
            np.testing.assert_array_equal(got["masks"][same], expected["masks"][same])
        np.testing.assert_array_equal(fuel["valid"].masks[[3, 1]], fuel["valid"].read()["masks"][[3, 1]])


def test_fuel_texture_mnist(tmp_path, texture_file, fuel_writer):
    with open_dataset(texture_file) as native:
        data = {s: native[s].read() for s in native.splits}
    fuel_writer(tmp_path / "tm2_ref.hdf5", data, "texture-mnist")
    with open_dataset(tmp_path / "tm2_ref.hdf5") as fuel:
        assert fuel.kind == "texture-mnist"
        for name, expected in data.items():
            got = fuel[name].read()
            assert set(got) == set(expected)
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key])


def test_split_dataset_lazy_preload_and_workers(shapes_file):
    lazy = tagdata.SplitDataset(shapes_file, "test")
    held = tagdata.SplitDataset(shapes_file, "test", preload=True)
    assert len(lazy) == len(held) == 40
    with open_dataset(shapes_file) as f:
        expected = f["test"].read()
    for dataset in (lazy, held):
        item = dataset[7]
        assert {k: (tuple(v.shape), v.dtype) for k, v in item.items()} == {
            "images": ((1, 20, 20), torch.float32), "masks": ((4, 20, 20), torch.float32),
            "segmentation": ((20, 20), torch.int64), "labels": ((3,), torch.int64)}
        np.testing.assert_array_equal(item["segmentation"].numpy(), expected["segmentation"][7])
    pickle.loads(pickle.dumps(lazy))  # no h5py handle inside
    loader = torch.utils.data.DataLoader(lazy, batch_size=8, num_workers=2, shuffle=False)
    batches = list(loader)
    np.testing.assert_array_equal(torch.cat([b["masks"] for b in batches]).numpy(), expected["masks"])
    lazy.close()
    with pytest.raises(UserError, match="has no split"):
        tagdata.SplitDataset(shapes_file, "nope")


def test_split_dataset_on_fuel_texture(tmp_path, texture_file):
    dataset = tagdata.SplitDataset(texture_file, "train", device="cpu")
    assert dataset[0]["textures"].dtype == torch.int64 and dataset[0]["masks"].shape == (3, 28, 28)
