"""Each experiment's real entry point, one epoch on tiny synthetic data in a temporary folder."""
import json

import numpy as np
import pytest

from experiments import dilated_vs_standard, lenet_mnist
from paddle_cnn.training import classification_metrics


def _check_run(run_dir, epochs):
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == epochs
    for split in ("val", "test"):
        pred = np.load(run_dir / "predictions" / f"{split}.npz")
        assert results[split]["acc"] == classification_metrics(pred["logits"], pred["labels"])["acc"]
    for name in ("curves.png", "confusion_test.png", "predictions_test.png", "metrics.csv", "config.json"):
        assert (run_dir / name).stat().st_size > 0, name
    return results


def test_dilated_vs_standard_one_epoch_then_resume(tmp_path, synthetic_csvs, capsys):
    train, test = synthetic_csvs
    out = tmp_path / "exp"
    args = ["--train-csv", str(train), "--test-csv", str(test), "--val-size", "80", "--epochs", "1",
            "--batch-size", "32", "--out", str(out), "--log-every", "1000"]
    summary = dilated_vs_standard.main(args)
    printed = capsys.readouterr().out
    assert "Total params: 334,154" in printed and "Total params: 170,314" in printed  # paddle.summary of both
    for name in ("comparison.md", "comparison.csv", "comparison.json", "curves.png", "sample_grid.png",
                 "predictions.png"):
        assert (out / name).stat().st_size > 0, name
    by_net = {r["net"]: r for r in summary["results"]}
    assert set(by_net) == {"standard_cnn", "dilated_cnn"}
    assert by_net["dilated_cnn"]["receptive_field"] == [16, 16] and by_net["dilated_cnn"]["params"] == 170_314
    for net in by_net:
        _check_run(out / net, 1)
        assert json.loads((out / net / "config.json").read_text())["lr"] == {"standard_cnn": 3e-4,
                                                                              "dilated_cnn": 1e-4}[net]
    table = (out / "comparison.md").read_text()
    assert "| standard_cnn | fashion-mnist | 334,154 | 10x10 | 1 |" in table
    assert by_net["standard_cnn"]["commands"][0].startswith("python -m ")

    # Continue the same experiment to 2 epochs: each net resumes from its latest checkpoint.
    dilated_vs_standard.main(["--resume", str(out), "--epochs", "2", "--log-every", "1000"])
    for net in by_net:
        _check_run(out / net, 2)
        assert (out / net / "checkpoints" / "epoch_1").is_dir()
    with pytest.raises(Exception, match="already holds a run"):
        dilated_vs_standard.main(args)


def test_lenet_mnist_one_epoch_reload_and_resume(tmp_path, synthetic_idx_root, capsys):
    out = tmp_path / "lenet"
    summary = lenet_mnist.main(["--data-dir", str(synthetic_idx_root), "--no-verify-md5", "--epochs", "1",
                                "--resume-epochs", "1", "--val-size", "60", "--out", str(out), "--log-every", "1000"])
    printed = capsys.readouterr().out
    assert "evaluation after 1 epochs" in printed and "evaluation after resuming to 2 epochs" in printed
    assert summary["first"]["epochs"] == 1 and summary["resumed"]["epochs"] == 2
    assert summary["reloaded_test_acc"] == summary["first"]["test"]["acc"]
    _check_run(out, 2)
    assert json.loads((out / "lenet_mnist.json").read_text())["resumed"]["test"]["n"] == 100
    assert json.loads((out / "config.json").read_text())["net"] == "lenet_subclassed"
