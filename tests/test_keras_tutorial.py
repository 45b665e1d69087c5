"""The tf.keras tutorial's experiment: its demo as written (which cannot learn) beside a recipe that does."""
import json
import subprocess
import sys

from helpers import CLI_ENV, ROOT
from experiments import keras_tutorial as K


def test_the_demo_is_the_tutorial_as_written():
    c = K.config_for("demo", "alexnet")
    assert (c.dataset, c.input_size, c.train_limit, c.limit_sample, c.val_fraction, c.split, c.test_limit) == \
        ("mnist", [227, 227], 256, "random", 0.1, "tail", 128)
    assert (c.optimizer, c.lr, c.batch_size, c.epochs, c.schedule, c.normalize) == ("sgd", 0.01, 128, 3, "constant",
                                                                                    "unit")
    assert K.config_for("demo", "vgg16").input_size == [224, 224]
    learns = K.config_for("learns", "vgg16")
    # Only the optimisation differs: the same images at the same size.
    same = ("dataset", "input_size", "train_limit", "limit_sample", "val_fraction", "test_limit", "seed", "normalize")
    assert all(getattr(learns, k) == getattr(K.config_for("demo", "vgg16"), k) for k in same)
    full = K.config_for("full-alexnet", "alexnet")
    assert (full.train_limit, full.test_limit, full.epochs, full.batch_size, full.lr) == (0, 0, 3, 128, 0.01)


def test_demo_stays_at_chance_and_the_recipe_learns_on_real_mnist(real_data_dir, tmp_path):
    # resnet18 at 64x64 instead of 224: the same nets and steps, a test-sized bill.
    cmd = [sys.executable, "-m", "experiments.keras_tutorial", "--nets", "resnet18", "--input-size", "64", "64",
           "--data-dir", str(real_data_dir), "--out", str(tmp_path / "kt")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=CLI_ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {r["part"]: r for r in json.loads((tmp_path / "kt" / "keras_tutorial.json").read_text())}
    demo, learns = rows["demo"], rows["learns"]
    assert demo["images"] == {"train": 230, "val": 26, "test": 128} == learns["images"]
    assert demo["test"]["acc"] < 0.35 < 0.6 < learns["test"]["acc"], (demo["test"], learns["test"])
    assert "| demo | resnet18 | 64 | 230 | 3 | 6 |" in res.stdout
    assert (tmp_path / "kt" / "keras_tutorial.png").stat().st_size > 10_000
    # Seeded: the same 256 random images each time (the first row drawn is not row 0).
    again = subprocess.run(cmd[:-1] + [str(tmp_path / "kt2"), "--part", "demo"], capture_output=True, text=True,
                           timeout=900, cwd=ROOT, env=CLI_ENV)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((tmp_path / "kt2" / "keras_tutorial.json").read_text())[0]
    assert second["test"] == demo["test"]


def test_the_table_and_picture_are_rebuilt_from_saved_results(tmp_path):
    """README's results (docs/results/keras_tutorial/PART/NET.json) suffice: no run folder needed."""
    import shutil

    shutil.copytree(ROOT / "docs" / "results" / "keras_tutorial", tmp_path / "kt",
                    ignore=shutil.ignore_patterns("keras_tutorial.*"))
    out = K.main(["--table-only", "--out", str(tmp_path / "kt")])
    parts = {(r["part"], r["net"]) for r in out["results"]}
    assert {("demo", n) for n in K.NETS} | {("learns", n) for n in K.NETS} <= parts
    md = (tmp_path / "kt" / "keras_tutorial.md").read_text()
    assert "| demo | alexnet | 227 | 230 | 3 | 6 |" in md and "| learns | vgg16 | 224 | 230 | 12 | 180 |" in md
    assert (tmp_path / "kt" / "keras_tutorial.png").stat().st_size > 10_000


def test_table_only_without_any_result_is_one_line_not_a_silent_success(tmp_path):
    res = subprocess.run([sys.executable, "-m", "experiments.keras_tutorial", "--table-only", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=CLI_ENV)
    assert res.returncode == 2 and "no finished run folder or saved results" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
