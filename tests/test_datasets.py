"""Datasets on small synthetic files made here: both CSV layouts, IDX, splits, loaders, bad input."""
import gzip
import io
import zipfile

import numpy as np
import paddle
import pytest

from paddle_cnn import datasets as D
from paddle_cnn.datasets import DataError, DataFileNotFoundError

N_PIX = 784


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _labels(n, seed=1):
    return np.random.default_rng(seed).integers(0, 10, size=n).astype(np.int64)


def _csv_text(images, first, first_name="label"):
    header = first_name + "," + ",".join(f"pixel{i}" for i in range(1, N_PIX + 1))
    rows = [header] + [f"{f}," + ",".join(map(str, img.reshape(-1))) for f, img in zip(first, images)]
    return "\n".join(rows) + "\n"


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


# ---------------------------------------------------------------- CSV: good input, both layouts


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".zip"])
def test_labelled_csv_round_trip_in_every_container(tmp_path, cache, suffix):
    images, labels = _images(12), _labels(12)
    text = _csv_text(images, labels).encode()
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        path.write_bytes(text)
    elif suffix == ".csv.gz":
        path.write_bytes(gzip.compress(text))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("fashion-mnist_train.csv", text)
    ds = D.FashionMNISTCSV(path, cache_dir=cache)
    assert len(ds) == 12 and ds.has_labels and ds.ids is None
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    image, label = ds[3]
    assert image.dtype == np.float32 and image.shape == (1, 28, 28)
    np.testing.assert_allclose(image[0], images[3] / 255.0, rtol=1e-6)
    assert label.dtype == np.int64 and label.tolist() == [labels[3]]


def test_unlabelled_csv_has_ids_and_no_labels(tmp_path, cache):
    images = _images(5)
    path = tmp_path / "fashion-mnist_test_data.csv"
    path.write_text(_csv_text(images, [10, 11, 12, 13, 14], first_name="ID"))
    ds = D.FashionMNISTCSV(path, cache_dir=cache)
    assert not ds.has_labels and ds.labels is None
    assert ds.ids.tolist() == [10, 11, 12, 13, 14]
    item = ds[0]
    assert len(item) == 1 and item[0].shape == (1, 28, 28)  # no made-up label
    batch = next(iter(ds.loader(4)))
    assert len(batch) == 1 and batch[0].shape == (4, 1, 28, 28)


def test_write_csv_reads_back_identically_both_layouts(tmp_path, cache):
    images, labels = _images(9), _labels(9)
    D.write_csv(tmp_path / "a.csv.gz", images, labels=labels)
    D.write_csv(tmp_path / "b.csv", images, ids=np.arange(9))
    a = D.load_csv(tmp_path / "a.csv.gz", cache_dir=cache)
    b = D.load_csv(tmp_path / "b.csv", cache_dir=cache)
    np.testing.assert_array_equal(a.images, images)
    np.testing.assert_array_equal(a.labels, labels)
    np.testing.assert_array_equal(b.images, images)
    assert b.labels is None and b.ids.tolist() == list(range(9))
    with pytest.raises(ValueError, match="exactly one"):
        D.write_csv(tmp_path / "c.csv", images)


def test_crlf_and_bom_are_accepted(tmp_path, cache):
    images, labels = _images(3), _labels(3)
    text = "\ufeff" + _csv_text(images, labels).replace("\n", "\r\n")
    path = tmp_path / "win.csv"
    path.write_bytes(text.encode("utf-8"))
    np.testing.assert_array_equal(D.load_csv(path, cache_dir=cache).images, images)


# ---------------------------------------------------------------- CSV cache


def test_cache_is_used_and_never_stale(tmp_path, cache, monkeypatch):
    images, labels = _images(6), _labels(6)
    path = tmp_path / "train.csv"
    path.write_text(_csv_text(images, labels))
    D.load_csv(path, cache_dir=cache)
    assert len(list((cache / "csv").glob("*.npz"))) == 1

    calls = []
    real_parse = D.csv_format.parse_csv
    monkeypatch.setattr(D.csv_format, "parse_csv", lambda *a, **k: calls.append(1) or real_parse(*a, **k))
    np.testing.assert_array_equal(D.load_csv(path, cache_dir=cache).images, images)
    assert calls == []  # served from the cache

    # Same size, same name, different content: must be re-parsed, not served stale.
    changed = images.copy()
    changed[0, 0, 0] = 7 if images[0, 0, 0] != 7 else 8
    changed_text = _csv_text(changed, labels)
    path.write_text(changed_text)
    got = D.load_csv(path, cache_dir=cache)
    assert calls == [1]
    np.testing.assert_array_equal(got.images, changed)


def test_corrupt_cache_entry_is_rebuilt_with_a_warning(tmp_path, cache):
    path = tmp_path / "train.csv"
    images, labels = _images(4), _labels(4)
    path.write_text(_csv_text(images, labels))
    D.load_csv(path, cache_dir=cache)
    entry = next((cache / "csv").glob("*.npz"))
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable CSV cache"):
        got = D.load_csv(path, cache_dir=cache)
    np.testing.assert_array_equal(got.images, images)
    assert D.load_csv(path, cache_dir=cache).images.shape == (4, 28, 28)


# ---------------------------------------------------------------- CSV: bad input


def _bad_csv(tmp_path, mutate, name="bad.csv"):
    images, labels = _images(4), _labels(4)
    lines = _csv_text(images, labels).splitlines()
    lines = mutate(lines)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _set_cell(lines, line_no, col, value):
    cells = lines[line_no - 1].split(",")
    cells[col] = value
    lines[line_no - 1] = ",".join(cells)
    return lines


@pytest.mark.parametrize("mutate, pattern", [
    (lambda L: ["lbl" + L[0][5:]] + L[1:], r"line 1: first column is 'lbl'; expected 'label'"),
    (lambda L: [L[0].replace("pixel17,", "pixel71,")] + L[1:], r"line 1: header column 18 is 'pixel71', expected 'pixel17'"),
    (lambda L: [L[0].rsplit(",", 1)[0]] + L[1:], r"line 1: header has 783 pixel columns"),
    (lambda L: L[:1], r"header but no data rows"),
    (lambda L: L[:3] + [L[3] + ",0"] + L[4:], r"line 4: row has 786 fields, expected 785"),
    (lambda L: L[:2] + [L[2].rsplit(",", 1)[0]] + L[3:], r"line 3: row has 784 fields, expected 785"),
    (lambda L: L[:2] + [""] + L[2:], r"line 3: blank line between data rows"),
    (lambda L: _set_cell(L, 3, 5, "abc"), r"line 3, column 'pixel5': cell 'abc' is not a number"),
    (lambda L: _set_cell(L, 4, 700, ""), r"line 4, column 'pixel700': cell is empty or NaN"),
    (lambda L: _set_cell(L, 2, 10, "NaN"), r"line 2, column 'pixel10': cell is empty or NaN"),
    (lambda L: _set_cell(L, 5, 1, "256"), r"line 5, column 'pixel1': pixel value '256' is outside 0..255"),
    (lambda L: _set_cell(L, 2, 784, "-1"), r"line 2, column 'pixel784': pixel value '-1' is outside 0..255"),
    (lambda L: _set_cell(L, 3, 2, "12.5"), r"line 3, column 'pixel2': cell '12.5' is not an integer"),
    (lambda L: _set_cell(L, 4, 0, "10"), r"line 4, column 'label': label '10' is outside 0..9"),
    (lambda L: _set_cell(L, 2, 0, "-3"), r"line 2, column 'label': label '-3' is outside 0..9"),
])
def test_bad_csv_cells_are_named_by_file_line_and_column(tmp_path, cache, mutate, pattern):
    path = _bad_csv(tmp_path, mutate)
    with pytest.raises(DataError, match=pattern) as err:
        D.FashionMNISTCSV(path, cache_dir=cache)
    assert str(path) in str(err.value)
    assert not (cache / "csv").exists() or not list((cache / "csv").glob("*.npz"))  # nothing cached


def test_missing_and_empty_csv(tmp_path, cache):
    with pytest.raises(DataFileNotFoundError, match="nope.csv: file not found"):
        D.FashionMNISTCSV(tmp_path / "nope.csv", cache_dir=cache)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.csv: file is empty"):
        D.FashionMNISTCSV(tmp_path / "empty.csv", cache_dir=cache)
    with pytest.raises(DataError, match="is not a file"):
        D.load_csv(tmp_path, cache_dir=cache)


def test_truncated_and_corrupt_gzip(tmp_path, cache):
    blob = gzip.compress(_csv_text(_images(3), _labels(3)).encode())
    (tmp_path / "cut.csv.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"cut.csv.gz: not a readable gzip file"):
        D.load_csv(tmp_path / "cut.csv.gz", cache_dir=cache)
    (tmp_path / "junk.csv.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match=r"junk.csv.gz: not a readable gzip file"):
        D.load_csv(tmp_path / "junk.csv.gz", cache_dir=cache)


def test_truncated_corrupt_and_ambiguous_zip(tmp_path, cache):
    text = _csv_text(_images(3), _labels(3)).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("train.csv", text)
    blob = buf.getvalue()
    (tmp_path / "cut.zip").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"cut.zip: not a readable zip file"):
        D.load_csv(tmp_path / "cut.zip", cache_dir=cache)
    # Flip a byte inside the compressed data: CRC or inflate error.
    flipped = bytearray(blob)
    flipped[60] ^= 0xFF
    (tmp_path / "flip.zip").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=r"flip.zip"):
        D.load_csv(tmp_path / "flip.zip", cache_dir=cache)
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as z:
        z.writestr("a.csv", text)
        z.writestr("b.csv", text)
    with pytest.raises(DataError, match=r"two.zip: expected a zip holding exactly one .csv file"):
        D.load_csv(tmp_path / "two.zip", cache_dir=cache)


# ---------------------------------------------------------------- IDX


def _write_idx_set(folder, n_train=20, n_test=8):
    folder.mkdir(parents=True, exist_ok=True)
    spec = D.SPECS["fashion-mnist"]
    D.write_idx(folder / spec.train_images.filename, _images(n_train))
    D.write_idx(folder / spec.train_labels.filename, _labels(n_train).astype(np.uint8))
    D.write_idx(folder / spec.test_images.filename, _images(n_test, 5))
    D.write_idx(folder / spec.test_labels.filename, _labels(n_test, 6).astype(np.uint8))
    return spec


def test_idx_dataset_reads_synthetic_files(tmp_path):
    _write_idx_set(tmp_path / "fashion-mnist")
    train = D.FashionMNISTIDX("train", tmp_path, verify_md5=False, download=False)
    test = D.FashionMNISTIDX("test", tmp_path, verify_md5=False, download=False)
    assert len(train) == 20 and len(test) == 8
    np.testing.assert_array_equal(train.images, _images(20))
    np.testing.assert_array_equal(test.labels, _labels(8, 6))


def test_idx_md5_mismatch_names_file_and_both_md5s(tmp_path):
    spec = _write_idx_set(tmp_path / "fashion-mnist")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: md5 is [0-9a-f]{32}, expected "
                                        + spec.train_images.md5):
        D.FashionMNISTIDX("train", tmp_path, download=False)


def test_idx_wrong_magic_and_wrong_length(tmp_path):
    good = tmp_path / "x-idx3-ubyte"
    D.write_idx(good, _images(3))
    raw = good.read_bytes()
    (tmp_path / "magic").write_bytes(b"\x00\x00\x08\x01" + raw[4:])
    with pytest.raises(DataError, match=r"magic: wrong IDX magic number 0x00000801, expected 0x00000803"):
        D.read_idx(tmp_path / "magic", D.idx.IMAGES_MAGIC)
    (tmp_path / "float").write_bytes(b"\x00\x00\x0d\x03" + raw[4:])
    with pytest.raises(DataError, match=r"wrong IDX magic number 0x00000d03"):
        D.read_idx(tmp_path / "float")
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(DataError, match=r"short: IDX length is 2363 bytes, expected 2368 for shape \(3, 28, 28\)"):
        D.read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\0")
    with pytest.raises(DataError, match=r"IDX length is 2369 bytes, expected 2368"):
        D.read_idx(tmp_path / "long")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short for an IDX header"):
        D.read_idx(tmp_path / "tiny")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:40])
    with pytest.raises(DataError, match=r"cut.gz: not a readable gzip file"):
        D.read_idx(tmp_path / "cut.gz")


def test_idx_label_count_and_range(tmp_path):
    D.write_idx(tmp_path / "img", _images(4))
    D.write_idx(tmp_path / "lab", np.array([1, 2, 3], np.uint8))
    with pytest.raises(DataError, match=r"lab: 3 labels for 4 images"):
        D.idx.load_idx_pair(tmp_path / "img", tmp_path / "lab")
    D.write_idx(tmp_path / "lab", np.array([1, 2, 12, 3], np.uint8))
    with pytest.raises(DataError, match=r"lab: label 12 at index 2 is outside 0..9"):
        D.idx.load_idx_pair(tmp_path / "img", tmp_path / "lab")


def test_missing_idx_files_error_lists_files_md5s_and_folder(tmp_path):
    with pytest.raises(DataFileNotFoundError) as err:
        D.FashionMNISTIDX("train", tmp_path, download=False)
    msg = str(err.value)
    for f in D.SPECS["fashion-mnist"].all_files():
        assert str(tmp_path / "fashion-mnist" / f.filename) in msg and f.md5 in msg
    assert "PADDLE_CNN_DATA" in msg


def test_download_is_md5_checked(tmp_path):
    # A local "mirror" reached through a file:// URL stands in for the network.
    mirror = tmp_path / "mirror"
    _write_idx_set(mirror)
    with pytest.raises(DataFileNotFoundError, match=r"download from file://.* failed: .*md5 .*expected"):
        D.ensure_files("fashion-mnist", tmp_path / "root", url_prefix=mirror.as_uri() + "/")
    # Nothing unverified was left behind under the final names.
    assert not any((tmp_path / "root" / "fashion-mnist").glob("*ubyte.gz"))

    spec = D.SPECS["fashion-mnist"]
    official = {f.filename: f for f in spec.all_files()}
    patched = D.idx.IDXSpec(spec.name, spec.url_prefix, *[
        D.idx.IDXFile(f.filename, D.idx.md5sum(mirror / f.filename)) for f in official.values()])
    D.idx.SPECS["fashion-mnist"] = patched
    try:
        folder = D.ensure_files("fashion-mnist", tmp_path / "root", url_prefix=mirror.as_uri() + "/")
        train = D.FashionMNISTIDX("train", tmp_path / "root")
        assert folder == tmp_path / "root" / "fashion-mnist" and len(train) == 20
    finally:
        D.idx.SPECS["fashion-mnist"] = spec


def test_unreachable_download_says_where_to_put_files(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=r"(?s)download from http://127.0.0.1:9/ failed.*Put the official"):
        D.ensure_files("mnist", tmp_path, url_prefix="http://127.0.0.1:9/")


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("PADDLE_CNN_DATA", str(tmp_path / "env"))
    assert D.data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert D.data_root() == tmp_path / "env"
    monkeypatch.delenv("PADDLE_CNN_DATA")
    assert D.data_root().name == "data" and (D.data_root() / "README.md").is_file()


# ---------------------------------------------------------------- splits, normalisation, loaders


def test_tail_split_is_the_notebooks():
    train, val = D.split_indices(60_000)
    assert len(train) == 59_000 and len(val) == 1_000
    assert train[-1] == 58_999 and val[0] == 59_000 and val[-1] == 59_999


def test_random_and_stratified_splits_are_seeded_disjoint_and_complete():
    labels = np.repeat(np.arange(10), [50, 150, 100, 100, 100, 100, 100, 100, 100, 100])
    for method in ("random", "stratified"):
        t1, v1 = D.split_indices(len(labels), 100, method, seed=3, labels=labels)
        t2, v2 = D.split_indices(len(labels), 100, method, seed=3, labels=labels)
        np.testing.assert_array_equal(v1, v2)
        assert len(v1) == 100 and len(np.intersect1d(t1, v1)) == 0
        assert len(t1) + len(v1) == len(labels)
        _, v3 = D.split_indices(len(labels), 100, method, seed=4, labels=labels)
        assert not np.array_equal(v1, v3)
    _, v = D.split_indices(len(labels), 100, "stratified", seed=3, labels=labels)
    counts = np.bincount(labels[v], minlength=10)
    assert counts[0] == 5 and counts[1] == 15 and counts[2:].tolist() == [10] * 8
    with pytest.raises(ValueError, match="val_size"):
        D.split_indices(10, 10)
    with pytest.raises(ValueError, match="split method"):
        D.split_indices(10, 2, "sideways")


def test_train_val_split_of_a_dataset():
    ds = D.ArrayDataset(_images(30), _labels(30))
    train, val = D.train_val_split(ds, val_size=5)
    np.testing.assert_array_equal(val.images, ds.images[25:])
    np.testing.assert_array_equal(train.labels, ds.labels[:25])


def test_normalisation_options():
    images = np.full((2, 28, 28), 255, np.uint8)
    unit = D.ArrayDataset(images, normalize="unit")[0][0]
    z = D.ArrayDataset(images, normalize="fashion-mnist")[0][0]
    custom = D.ArrayDataset(images, normalize=(0.5, 0.5))[0][0]
    assert unit.max() == 1.0
    np.testing.assert_allclose(z, (1 - D.FASHION_MNIST_MEAN) / D.FASHION_MNIST_STD, rtol=1e-5)
    np.testing.assert_allclose(custom, 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="normalize"):
        D.ArrayDataset(images, normalize="imagenet")


def test_paddle_vision_transforms_are_applied():
    import paddle.vision.transforms as T

    images = _images(4)
    flipped = D.ArrayDataset(images, _labels(4), transform=T.RandomHorizontalFlip(prob=1.0))
    np.testing.assert_allclose(flipped[1][0][0], images[1][:, ::-1] / 255.0, rtol=1e-6)
    to_tensor = D.ArrayDataset(images, _labels(4), transform=T.Compose([T.ToTensor(), T.Normalize([0.5], [0.5])]))
    img = to_tensor[2][0]
    assert tuple(img.shape) == (1, 28, 28)
    np.testing.assert_allclose(np.asarray(img), (images[2][None] / 255.0 - 0.5) / 0.5, rtol=1e-5, atol=1e-6)
    batch = next(iter(flipped.loader(3)))
    np.testing.assert_allclose(batch[0][0, 0], images[0][:, ::-1] / 255.0, rtol=1e-6)


def test_batch_loader_matches_per_item_dataset_and_paddle_dataloader():
    ds = D.ArrayDataset(_images(70), _labels(70), normalize="fashion-mnist")
    loader = ds.loader(batch_size=16)
    assert len(loader) == 5 and len(ds.loader(16, drop_last=True)) == 4
    batches = list(loader)
    reference = list(paddle.io.DataLoader(ds, batch_size=16, shuffle=False))
    assert len(batches) == len(reference)
    for (x, y), (rx, ry) in zip(batches, reference):
        np.testing.assert_allclose(x, rx.numpy(), rtol=1e-6)
        np.testing.assert_array_equal(y, ry.numpy())
        assert x.dtype == np.float32 and y.dtype == np.int64 and y.shape == (len(x), 1)


def test_shuffled_order_depends_only_on_seed_and_epoch():
    ds = D.ArrayDataset(_images(50), _labels(50))
    a = ds.loader(10, shuffle=True, seed=7)
    first = [y.ravel().tolist() for _, y in a]
    second = [y.ravel().tolist() for _, y in a]  # epoch advanced: a new order
    assert first != second and a.epoch == 2
    b = ds.loader(10, shuffle=True, seed=7)
    b.set_epoch(1)
    assert [y.ravel().tolist() for _, y in b] == second  # a resumed loader draws the same order
    assert sorted(sum(first, [])) == sorted(ds.labels.tolist())


def test_class_names():
    assert D.class_names()[0] == "T-shirt/top" and D.class_names()[9] == "Ankle boot"
    zh = D.class_names("fashion-mnist", "zh")
    assert zh[:2] == ["T恤", "裤子"] and len(zh) == 10 and len(set(zh)) == 10
    assert D.class_names("mnist") == [str(d) for d in range(10)]
    with pytest.raises(ValueError, match="lang"):
        D.class_names(lang="fr")


def test_array_dataset_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"uint8 of shape \(N, H, W\)"):
        D.ArrayDataset(np.zeros((3, 28, 28), np.float32))
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        D.ArrayDataset(_images(3), np.array([1, 2]))


def test_export_csv_command_round_trips_idx(tmp_path):
    from paddle_cnn.datasets.__main__ import main

    _write_idx_set(tmp_path / "fashion-mnist")
    spec = D.SPECS["fashion-mnist"]
    patched = D.idx.IDXSpec(spec.name, spec.url_prefix, *[
        D.idx.IDXFile(f.filename, D.idx.md5sum(tmp_path / "fashion-mnist" / f.filename)) for f in spec.all_files()])
    D.idx.SPECS["fashion-mnist"] = patched
    try:
        assert main(["export-csv", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--gzip",
                     "--unlabelled-test", "--no-download"]) == 0
        train = D.FashionMNISTCSV(tmp_path / "out" / "fashion-mnist_train.csv.gz", use_cache=False)
        test_data = D.FashionMNISTCSV(tmp_path / "out" / "fashion-mnist_test_data.csv.gz", use_cache=False)
        idx_train = D.FashionMNISTIDX("train", tmp_path, download=False)
        np.testing.assert_array_equal(train.images, idx_train.images)
        np.testing.assert_array_equal(train.labels, idx_train.labels)
        assert not test_data.has_labels and test_data.ids.tolist() == list(range(8))
    finally:
        D.idx.SPECS["fashion-mnist"] = spec
    assert main(["export-csv", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o2"),
                 "--no-download"]) == 2
