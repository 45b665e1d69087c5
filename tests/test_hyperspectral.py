"""Hyperspectral scenes (paddle_cnn/datasets/hyperspectral.py) on small .mat files in the official
layout made here: the reader's errors, the paper's protocol checked against scikit-learn, windows cut
from a view, OA/AA/kappa, and the HybridSN experiment run as a user runs it."""
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import CLI_ENV, ROOT, cli, learnable_scene as _scene, one_line_error
from paddle_cnn.datasets import DataError, DataFileNotFoundError, get_dataset, hyperspectral as H
from paddle_cnn.training import RunConfig, build_data

NAME = "indian-pines"


@pytest.fixture
def scene_root(tmp_path):
    cube, gt = _scene()
    H.write_scene(tmp_path / "data", NAME, cube, gt)
    return tmp_path / "data"


def _load(root, **kw):
    return H.load_scene(NAME, root, download=False, verify=False, **kw)


def test_a_scene_in_the_official_layout_reads_back_exactly(scene_root, tmp_path):
    cube, gt = _load(scene_root)
    want_cube, want_gt = _scene()
    np.testing.assert_array_equal(cube, want_cube.astype(np.float32))
    np.testing.assert_array_equal(gt, want_gt)
    H.write_scene(tmp_path / "v73", NAME, want_cube, want_gt, v73=True)  # MATLAB's HDF5 format, through h5py
    cube73, gt73 = _load(tmp_path / "v73")
    np.testing.assert_array_equal(cube73, cube)
    np.testing.assert_array_equal(gt73, gt)


def _rewrite(root, role, value, key=None):
    import scipy.io

    f = get_dataset(NAME).file(role)
    scipy.io.savemat(str(root / NAME / f.name), {key or f.key: value})
    return root / NAME / f.name


def _write(path, change):
    path.write_bytes(change(path.read_bytes()))
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda r: _rewrite(r, "cube", np.zeros((4, 4, 3)), key="cube"), "holds no key 'indian_pines_corrected' "
                                                                       "(it holds: cube)"),
    (lambda r: _rewrite(r, "ground-truth", np.zeros((23, 20), np.uint8)), "ground truth is 23 x 20 but the cube"),
    (lambda r: _rewrite(r, "ground-truth", np.full((24, 20), 17, np.uint8)), "label 17 at row 0, column 0 is "
                                                                             "outside 0..16"),
    (lambda r: _rewrite(r, "ground-truth", np.full((24, 20), -1, np.int16)), "label -1 at row 0, column 0"),
    (lambda r: _rewrite(r, "cube", np.where(np.arange(40) == 7, np.nan, 1.0) * np.ones((24, 20, 40))),
     "holds nan at row 0, column 0, band 7"),
    (lambda r: _rewrite(r, "cube", np.full((24, 20, 40), np.inf)), "holds inf at row 0, column 0, band 0"),
    (lambda r: _write(r / NAME / "Indian_pines_gt.mat", lambda raw: b"label\n1,2\n"), "not a MATLAB .mat file"),
    (lambda r: _write(r / NAME / "Indian_pines_corrected.mat", lambda raw: raw[:3000]),
     "cannot be read as a MATLAB file"),
])
def test_a_bad_scene_file_is_refused_naming_the_file_and_the_problem(scene_root, damage, message):
    damaged = damage(scene_root)
    with pytest.raises(DataError, match="Indian_pines") as info:
        _load(scene_root)
    assert message in str(info.value), str(info.value)
    assert str(damaged) in str(info.value)


def test_missing_files_list_what_to_put_where_and_copies_of_your_own_need_no_verify(scene_root, tmp_path):
    with pytest.raises(DataFileNotFoundError) as info:
        H.load_scene(NAME, tmp_path / "empty", download=False)
    text = str(info.value)
    for f in get_dataset(NAME).files:
        assert f.name in text and f.md5 in text and f.urls[0] in text
    assert not (tmp_path / "empty").exists()
    with pytest.raises(DataError, match=r"md5 is .* expected 66dbc9f4.*pass --no-verify-md5"):
        H.load_scene(NAME, scene_root, download=False)


def test_the_cli_reports_a_bad_scene_in_one_line(scene_root, tmp_path):
    _rewrite(scene_root, "ground-truth", np.full((24, 20), 40, np.uint8))
    res = cli("train", "--net", "hybridsn", "--dataset", NAME, "--data-dir", scene_root, "--no-verify-md5",
              "--no-download", "--input-size", 11, 11, "--pca-bands", 15, "--out", tmp_path / "run")
    one_line_error(res, "Indian_pines_gt.mat", "label 40 at row 0, column 0 is outside 0..16")
    assert not (tmp_path / "run").exists()


# -- the protocol, against scikit-learn (what the official HybridSN notebook calls)

def test_pca_whitening_matches_scikit_learn():
    from sklearn.decomposition import PCA

    cube = _scene(bands=60)[0].astype(np.float64)
    ours, kept = H.pca_whiten(cube, 15)
    model = PCA(15, whiten=True).fit(cube.reshape(-1, 60))
    theirs = model.transform(cube.reshape(-1, 60)).reshape(ours.shape)
    signs = np.sign((ours * theirs).sum(axis=(0, 1)))  # an axis's sign is a convention; compare up to it
    np.testing.assert_allclose(ours, theirs * signs, rtol=1e-4, atol=1e-4)
    assert kept == pytest.approx(model.explained_variance_ratio_.sum(), rel=1e-6)
    np.testing.assert_allclose(ours.reshape(-1, 15).std(axis=0, ddof=1), 1.0, rtol=1e-4)


def test_the_stratified_split_keeps_class_shares_as_scikit_learn_does():
    from sklearn.model_selection import train_test_split

    cube, gt = _scene(h=60, w=50)
    scene = H.prepare_scene(cube.astype(np.float32), gt, 15, 5)
    train, val, test = H.split_scene(scene, 0.3, 40, seed=3, source="s")
    n = len(scene.labels)
    assert len(train) + len(val) + len(test) == n and len(val) == 40
    taken = np.concatenate([train.indices, val.indices, test.indices])
    assert len(np.unique(taken)) == n  # each labelled pixel in exactly one split
    _, _, y_train, _ = train_test_split(np.arange(n), scene.labels, test_size=n - round(0.3 * n),
                                        stratify=scene.labels, random_state=0)
    ours = np.bincount(np.concatenate([train.labels, val.labels]), minlength=16)
    theirs = np.bincount(y_train, minlength=16)
    assert np.abs(ours - theirs).max() <= 1, (ours, theirs)


def test_kappa_and_average_accuracy_match_scikit_learn_on_an_asymmetric_confusion():
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, 400)
    pred = np.where(rng.random(400) < 0.7, truth, rng.integers(0, 5, 400))
    pred[truth == 4] = 0  # class 4 always called 0: the matrix is far from symmetric
    m = confusion_matrix(truth, pred, labels=range(5))
    got = H.scene_metrics(m)
    assert got["kappa"] == pytest.approx(cohen_kappa_score(truth, pred), abs=1e-12)
    per_class = [float(np.mean(pred[truth == k] == k)) for k in range(5)]
    assert got["per_class_acc"] == pytest.approx(per_class) and got["per_class_acc"][4] == 0.0
    assert got["aa"] == pytest.approx(np.mean(per_class)) and got["oa"] == pytest.approx(np.mean(pred == truth))
    assert H.scene_metrics(m.T)["per_class_acc"] != got["per_class_acc"]  # a transposed matrix is caught


def test_windows_are_cut_from_a_view_of_the_padded_cube_centred_on_each_pixel():
    cube, gt = _scene()
    scene = H.prepare_scene(cube.astype(np.float32), gt, 12, 7)
    train, _, _ = H.split_scene(scene, 0.5, 5, seed=0, source="s")
    assert np.shares_memory(train._view, scene.padded)  # no window is stored
    batch = train.batch(np.arange(len(train)))
    assert batch.shape == (len(train), 1, 12, 7, 7) and batch.dtype == np.float32
    reduced, _ = H.pca_whiten(cube.astype(np.float32), 12)
    padded = np.pad(reduced, ((3, 3), (3, 3), (0, 0)))
    for i in (0, len(train) // 2, len(train) - 1):
        r, c = train.rows[i], train.cols[i]
        np.testing.assert_array_equal(batch[i, 0], padded[r:r + 7, c:c + 7].transpose(2, 0, 1))
        np.testing.assert_array_equal(batch[i, 0, :, 3, 3], reduced[r, c])
        assert train.labels[i] == gt[r, c] - 1
    every = H.ScenePixels(scene)
    assert len(every) == gt.size
    np.testing.assert_array_equal(every.batch(np.array([gt.size - 1]))[0, 0], padded[-7:, -7:].transpose(2, 0, 1))


def test_run_config_builds_the_scene_split_and_refuses_what_a_scene_cannot_take(scene_root):
    cfg = RunConfig(net="hybridsn", dataset=NAME, data_dir=str(scene_root), verify_md5=False, download=False,
                    val_size=10, input_size=[9, 9], pca_bands=14)
    data = build_data(cfg.validate())
    assert data.train[0][0].shape == (1, 14, 9, 9) and cfg.input_shape() == (1, 14, 9, 9)
    assert len(data.train) + len(data.val) + len(data.test) == int((_scene()[1] > 0).sum())
    for bad, message in ((dict(input_size=[8, 8]), "square and odd"), (dict(augment="flip-crop"), "keep their"),
                         (dict(train_fraction=1.0), "between 0 and 1")):
        with pytest.raises(Exception, match=message):
            RunConfig(net="hybridsn", dataset=NAME, **bad).validate()


def test_the_hybridsn_experiment_writes_oa_aa_kappa_and_the_classification_map(scene_root, tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "experiments.hybridsn", "--dataset", NAME, "--data-dir", scene_root,
                          "--no-verify-md5", "--no-download", "--epochs", "2", "--input-size", "11", "11",
                          "--pca-bands", "15", "--batch-size", "32", "--out", out, "--log-every", "1000"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=CLI_ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OA " in res.stdout and "(paper: OA 99.75" in res.stdout and "classification map:" in res.stdout
    results = json.loads((out / "results.json").read_text())
    test = results["test"]
    assert set(test) >= {"oa", "aa", "kappa", "per_class_acc"} and test["oa"] == test["acc"]
    counts = results["pixels_per_class"]
    assert sum(counts["test"]) == test["n"] and len(counts["train"]) == 16
    with np.load(out / "classification_map.npz") as saved:
        np.testing.assert_array_equal(saved["truth"], _scene()[1])
        assert saved["predicted"].shape == (24, 20) and saved["predicted"].min() >= 1
    assert (out / "classification_map.png").stat().st_size > 10_000 and (out / "confusion_test.png").is_file()

    # A new scene of the same sensor (here a crop under a key of its own), mapped from the run and
    # from its export alike; a file that is not a scene is one line and the others are still mapped.
    import scipy.io

    cube, _ = _scene()
    scipy.io.savemat(str(tmp_path / "field.mat"), {"my_cube": cube[4:20, 2:18]})
    (tmp_path / "notes.mat").write_text("not a scene")
    labels_only = scene_root / NAME / "Indian_pines_gt.mat"  # a .mat, but no cube in it
    res = cli("predict", out, tmp_path / "field.mat", tmp_path / "notes.mat", labels_only, "--map-dir",
              tmp_path / "maps", cwd=tmp_path)
    assert res.returncode == 1 and "notes.mat: not a MATLAB .mat file" in res.stderr, res.stderr[-2000:]
    assert "Indian_pines_gt.mat: holds no 3-D array (it holds: indian_pines_gt)" in res.stderr, res.stderr[-2000:]
    assert "field.mat: 16 x 16 pixels:" in res.stdout and (tmp_path / "maps" / "field_map.png").is_file()
    with np.load(tmp_path / "maps" / "field_map.npz") as saved:
        from_run = saved["predicted"]
    assert from_run.shape == (16, 16) and from_run.min() >= 1 and from_run.max() <= 16
    assert cli("export", out, "--out", tmp_path / "export").returncode == 0
    res = cli("predict", tmp_path / "export", tmp_path / "field.mat", "--map-dir", tmp_path / "maps2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with np.load(tmp_path / "maps2" / "field_map.npz") as saved:
        assert (saved["predicted"] == from_run).mean() > 0.97  # Paddle Inference and dygraph agree
