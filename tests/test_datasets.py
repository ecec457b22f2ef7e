import gzip
import hashlib
import struct

import numpy as np
import pytest

from sklearn_crosslip.datasets import load_digits, load_mnist, load_mnist_idx, read_idx


def _write_idx(path, arr, type_code=0x08, compress=False, truncate=0):
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    payload = header + arr.astype(">u1").tobytes()
    if truncate:
        payload = payload[:-truncate]
    opener = gzip.open if compress else open
    with opener(path, "wb") as fh:
        fh.write(payload)


def test_bundled_mnist_default_is_the_official_split():
    X_train, y_train, X_test, y_test = load_mnist()
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float64 and y_train.dtype.kind == "i"
    assert 0.0 == X_train.min() and X_train.max() == 1.0
    # the official class counts of the 60000 training images
    assert list(np.bincount(y_train)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                          5949]
    # shuffle=False keeps the official order: the first training labels are 5 0 4 1 9
    X_off, y_off, _, _ = load_mnist(shuffle=False)
    assert list(y_off[:5]) == [5, 0, 4, 1, 9]
    # the default shuffle is a fixed permutation of the official order
    perm = np.random.RandomState(0).permutation(60000)
    assert np.array_equal(y_off[perm], y_train) and np.array_equal(X_off[perm[:100]], X_train[:100])
    assert list(y_test[:5]) == [7, 2, 1, 0, 4]


def test_bundled_5k_subset_shapes_ranges_and_balance():
    X_train, y_train, X_test, y_test = load_mnist(subset="5k")
    assert X_train.shape == (5000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float64 and y_train.dtype.kind == "i"
    assert 0.0 == X_train.min() and X_train.max() == 1.0
    assert np.array_equal(np.bincount(y_train), np.full(10, 500))
    # shuffled: not grouped by class any more, deterministic
    assert len(set(y_train[:50])) > 5
    X2, y2, _, _ = load_mnist(subset="5k")
    assert np.array_equal(y_train, y2) and np.array_equal(X_train, X2)
    # official test order: first labels of t10k are 7 2 1 0 4
    assert list(y_test[:5]) == [7, 2, 1, 0, 4]


def test_5k_subset_is_part_of_the_official_training_set():
    X5, y5, _, _ = load_mnist(subset="5k", shuffle=False)
    X, y, _, _ = load_mnist(shuffle=False)
    index = {row.tobytes(): label for row, label in zip((X * 255).astype(np.uint8), y)}
    for row, label in zip((X5 * 255).astype(np.uint8), y5):
        assert index[row.tobytes()] == label


def test_unknown_subset_is_rejected():
    with pytest.raises(ValueError, match="subset"):
        load_mnist(subset="10k")


def test_bundled_files_match_published_md5():
    from importlib import resources

    expected = {
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
        "train5k-images-idx3-ubyte.gz": "cf43cf5099b59d94a38ce26ba7d8c3cf",
        "train5k-labels-idx1-ubyte.gz": "0b46166b7c9707a10274bd2f91b08208",
        # the official training set (md5 of the published train-*-ubyte files)
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    }
    base = resources.files("sklearn_crosslip.datasets") / "data"
    for name, md5 in expected.items():
        raw = gzip.decompress((base / name).read_bytes())
        assert hashlib.md5(raw).hexdigest() == md5, name


@pytest.mark.parametrize("compress", [False, True])
def test_load_from_user_directory(tmp_path, compress):
    rng = np.random.RandomState(0)
    ext = ".gz" if compress else ""
    for split, n in (("train", 12), ("t10k", 7)):
        imgs = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        labs = rng.randint(0, 10, size=n).astype(np.uint8)
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte{ext}", imgs, compress=compress)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{ext}", labs, compress=compress)
    X_train, y_train, X_test, y_test = load_mnist(tmp_path, shuffle=False)
    assert X_train.shape == (12, 784) and X_test.shape == (7, 784)
    np.testing.assert_array_equal(X_test[0], imgs[0].reshape(-1) / 255.0)
    np.testing.assert_array_equal(y_test, labs)


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    trunc = tmp_path / "trunc"
    _write_idx(trunc, np.zeros((3, 4, 4), np.uint8), truncate=5)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(trunc)
    imgs = tmp_path / "imgs"
    labs = tmp_path / "labs"
    _write_idx(imgs, np.zeros((3, 4, 4), np.uint8))
    _write_idx(labs, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="3 images but 4 labels"):
        load_mnist_idx(imgs, labs)
    _write_idx(labs, np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match="1-d"):
        load_mnist_idx(imgs, labs)
    with pytest.raises(FileNotFoundError, match="t10k"):
        load_mnist(tmp_path)


def test_load_digits_scaled():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_user_directory_5k_subset_reads_train5k_files(tmp_path):
    rng = np.random.RandomState(1)
    for stem, n in (("train5k", 6), ("t10k", 3)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz",
                   rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8), compress=True)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz",
                   rng.randint(0, 10, size=n).astype(np.uint8), compress=True)
    X_train, _, X_test, _ = load_mnist(tmp_path, subset="5k", shuffle=False)
    assert X_train.shape == (6, 784) and X_test.shape == (3, 784)
    # the official training files are not there: the full split names them in its error
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path)
