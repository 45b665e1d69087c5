"""The real Fashion-MNIST and MNIST files under $PADDLE_CNN_DATA (fail, not skip, in CI)."""
import numpy as np
import pytest

from paddle_cnn import datasets as D


@pytest.fixture(scope="module")
def fashion_train(real_data_dir):
    return D.FashionMNISTIDX("train", real_data_dir, download=False)


def test_fashion_mnist_split_sizes(real_data_dir, fashion_train):
    train, val = D.train_val_split(fashion_train)
    test = D.FashionMNISTIDX("test", real_data_dir, download=False)
    assert (len(train), len(val), len(test)) == (59_000, 1_000, 10_000)
    np.testing.assert_array_equal(val.images, fashion_train.images[59_000:])
    # The 10k test set is balanced: 1,000 of each class.
    assert np.bincount(test.labels).tolist() == [1000] * 10


def test_fashion_mnist_pixel_statistics(fashion_train):
    x = fashion_train.images.astype(np.float64) / 255.0
    assert round(x.mean(), 4) == D.FASHION_MNIST_MEAN == 0.2860
    assert round(x.std(), 4) == D.FASHION_MNIST_STD == 0.3530


def test_mnist_loads(real_data_dir):
    train = D.MNISTIDX("train", real_data_dir, download=False)
    test = D.MNISTIDX("test", real_data_dir, download=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert round(float(train.images.mean() / 255.0), 4) == D.MNIST_MEAN


def test_csv_exported_from_idx_reads_back_identical(real_data_dir, fashion_train, tmp_path):
    from paddle_cnn.datasets.__main__ import main

    assert main(["export-csv", "--data-dir", str(real_data_dir), "--out", str(tmp_path),
                 "--unlabelled-test", "--no-download"]) == 0
    csv_train = D.FashionMNISTCSV(tmp_path / "fashion-mnist_train.csv", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(csv_train.images, fashion_train.images)
    np.testing.assert_array_equal(csv_train.labels, fashion_train.labels)
    # Second load comes from the cache and is still identical.
    again = D.FashionMNISTCSV(tmp_path / "fashion-mnist_train.csv", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, fashion_train.images)
    train, val = D.train_val_split(csv_train)
    assert (len(train), len(val)) == (59_000, 1_000)
    unlabelled = D.FashionMNISTCSV(tmp_path / "fashion-mnist_test_data.csv", cache_dir=tmp_path / "cache")
    test = D.FashionMNISTIDX("test", real_data_dir, download=False)
    assert len(unlabelled) == 10_000 and not unlabelled.has_labels
    np.testing.assert_array_equal(unlabelled.images, test.images)


def test_real_fashion_mnist_smoke_run(real_data_dir, tmp_path):
    """200 steps of the notebook's standard CNN on real data reach a sane whole-test-set accuracy."""
    from paddle_cnn.training import RunConfig, train_and_evaluate

    cfg = RunConfig(net="standard_cnn", data_dir=str(real_data_dir), epochs=1, train_limit=13_800, val_size=1000,
                    test_limit=2000, lr=1e-3, log_every=1000)
    _, results = train_and_evaluate(cfg, tmp_path / "run", verbose=False)
    assert results["val"]["n"] == 1000 and results["test"]["n"] == 2000
    assert 0.70 < results["test"]["acc"] < 0.95, results["test"]
