"""The MNIST IDX reader on good and bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tagdata import UserError
from tagdata.idx import MNIST_ENV, find_file, load_mnist, mnist_dir, read_idx


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, idx_writer, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = idx_writer(tmp_path / "a-idx3-ubyte", array, compress)
    result = read_idx(path)
    np.testing.assert_array_equal(result, array)
    assert result.dtype == np.uint8


def test_wider_types_are_big_endian(tmp_path):
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + np.array([1, -2, 70000], ">i4").tobytes())
    np.testing.assert_array_equal(read_idx(path), [1, -2, 70000])


@pytest.mark.parametrize("content, message", [
    (b"", "bad magic number empty"),
    (b"\x01\x00\x08\x01", "bad magic number 01000801"),
    (b"\x00\x00\x07\x01", "bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5]) + b"abc", "IDX file truncated: dimensions 5 need 5 data bytes, found 3"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 2]) + b"abc", "has trailing bytes"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_idx(path)


def test_truncated_gzip(tmp_path, idx_writer):
    good = idx_writer(tmp_path / "good.gz", np.zeros((10, 28, 28), np.uint8), True)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        read_idx(bad)
    wrapped = tmp_path / "wrapped.gz"  # a valid gzip of something that is not IDX
    wrapped.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(wrapped)


def test_directory_resolution(tmp_path, monkeypatch, tiny_mnist_dir):
    monkeypatch.delenv(MNIST_ENV, raising=False)
    with pytest.raises(UserError, match="pass --mnist-dir DIR or set TAGDATA_MNIST_DIR"):
        mnist_dir(None)
    with pytest.raises(UserError, match="does not exist"):
        mnist_dir(tmp_path / "nowhere")
    monkeypatch.setenv(MNIST_ENV, str(tiny_mnist_dir))
    assert mnist_dir(None) == tiny_mnist_dir
    assert find_file(tiny_mnist_dir, "train-images-idx3-ubyte").name == "train-images-idx3-ubyte.gz"
    assert find_file(tiny_mnist_dir, "t10k-images-idx3-ubyte").name == "t10k-images-idx3-ubyte"
    with pytest.raises(UserError, match=r"MNIST file train-images-idx3-ubyte\[.gz\] not found"):
        find_file(tmp_path, "train-images-idx3-ubyte")


def test_load_mnist_checks_consistency(tmp_path, idx_writer):
    idx_writer(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    idx_writer(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(UserError, match="holds 5 images but .* 4 labels"):
        load_mnist(tmp_path, "train")
    idx_writer(tmp_path / "train-labels-idx1-ubyte", np.full(5, 11, np.uint8))
    with pytest.raises(UserError, match="labels must be digits 0..9"):
        load_mnist(tmp_path, "train")
    idx_writer(tmp_path / "train-labels-idx1-ubyte", np.zeros((5, 2), np.uint8))
    with pytest.raises(UserError, match="expected uint8 labels"):
        load_mnist(tmp_path, "train")


def test_real_mnist_files(real_mnist_dir):
    images, labels = load_mnist(real_mnist_dir, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert list(np.bincount(labels)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
