"""Shared fixtures. Real-data tests use `real_data_dir`; they skip locally without data, but fail
when PADDLE_CNN_REQUIRE_DATA=1 (set by .ci/run) so CI never passes by skipping them."""
import os
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import paddle
import pytest

# Every process the suite starts inherits this marker, so the end of the session can find any that
# outlived it (a VisualDL server left behind by `board`, a stuck launcher) wherever it was reparented.
SESSION_MARK = "PADDLE_CNN_TEST_SESSION"
os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)


def _marked_processes():
    mark = f"{SESSION_MARK}={os.environ[SESSION_MARK]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
    return found


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a process of the suite outlives it (then end it, so nothing is left behind)."""
    deadline = time.time() + 10
    left = _marked_processes()
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = _marked_processes()
    if left:
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        print("\nprocesses started by the test suite outlived it (killed now):\n" +
              "\n".join(f"  {pid}: {cmd[:200]}" for pid, cmd in left))
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    root = os.environ.get("PADDLE_CNN_DATA")
    required = os.environ.get("PADDLE_CNN_REQUIRE_DATA") == "1"
    if root and (Path(root) / "fashion-mnist").is_dir():
        return Path(root)
    message = (f"real data not found: PADDLE_CNN_DATA={root!r} must hold fashion-mnist/ and mnist/ "
               "with the official *-ubyte.gz files")
    if required:
        pytest.fail(message)
    pytest.skip(message)


def synthetic_images(n: int, seed: int = 0, num_classes: int = 10):
    """Learnable 28x28 uint8 images: class c has a bright bar at row band c, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 220
    return images, labels


def make_csv_pair(root: Path, train_rows: int = 400, test_rows: int = 120):
    """Labelled train and test CSVs of :func:`synthetic_images` in ``root``."""
    from paddle_cnn import datasets as D

    tr, tl = synthetic_images(train_rows, seed=1)
    te, tel = synthetic_images(test_rows, seed=2)
    return D.write_csv(root / "train.csv", tr, labels=tl), D.write_csv(root / "test.csv", te, labels=tel)


@pytest.fixture(scope="session")
def csv_pair(tmp_path_factory):
    """Read-only labelled train (400 rows) and test (120 rows) CSVs shared by the whole session."""
    return make_csv_pair(tmp_path_factory.mktemp("csv_pair"))


@pytest.fixture(scope="session")
def finished_run(csv_pair, tmp_path_factory):
    """A finished 2-epoch standard_cnn run on ``csv_pair``, shared read-only (copy it to change it:
    ``helpers.copy_run``)."""
    from helpers import tiny_config
    from paddle_cnn.training import train_and_evaluate

    run = tmp_path_factory.mktemp("finished") / "run"
    train_and_evaluate(tiny_config(csv_pair, epochs=2), run, verbose=False)
    return run


@pytest.fixture
def synthetic_csvs(tmp_path):
    """Labelled train (400 rows) and test (120 rows) CSVs in the Kaggle layout."""
    from paddle_cnn import datasets as D

    train_images, train_labels = synthetic_images(400, seed=1)
    test_images, test_labels = synthetic_images(120, seed=2)
    train = D.write_csv(tmp_path / "data" / "train.csv", train_images, labels=train_labels)
    test = D.write_csv(tmp_path / "data" / "test.csv.gz", test_images, labels=test_labels)
    return train, test


@pytest.fixture
def synthetic_idx_root(tmp_path):
    """A data root holding synthetic mnist/ and fashion-mnist/ IDX files (use with verify_md5=False)."""
    from paddle_cnn import datasets as D

    root = tmp_path / "idx"
    for name, spec in D.SPECS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for mode, n, seed in (("train", 360, 3), ("test", 100, 4)):
            images, labels = synthetic_images(n, seed)
            img, lab = spec.files(mode)
            D.write_idx(folder / img.filename, images)
            D.write_idx(folder / lab.filename, labels.astype(np.uint8))
    return root
