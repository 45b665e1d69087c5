"""Starting a run from weights that exist (init_from): tutorial .pdparams files, run folders,
exports; by name or by position; everything but the classifier; refusals that name the tensors."""
import json

import numpy as np
import paddle
import pytest
from paddle import nn

from helpers import cli, one_line_error, tiny_config
from paddle_cnn import nets
from paddle_cnn.training import Trainer, train_and_evaluate
from paddle_cnn.training.warmstart import InitError, apply_init, classifier_keys, read_source


class TutorialLeNet(nn.Layer):
    """LeNet as many AI Studio notebooks write it: a subclass naming its layers conv1 ... fc3."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2D(1, 6, 5, padding=2), nn.Conv2D(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.avg_pool2d(nn.functional.sigmoid(self.conv1(x)), 2)
        x = nn.functional.avg_pool2d(nn.functional.sigmoid(self.conv2(x)), 2).flatten(1)
        return self.fc3(nn.functional.sigmoid(self.fc2(nn.functional.sigmoid(self.fc1(x)))))


def tutorial_lenet() -> nn.Layer:
    return TutorialLeNet()


def _state(net):
    return {k: v.numpy() for k, v in net.state_dict().items()}


def test_a_tutorial_pdparams_loads_into_our_lenet_by_position_and_is_recorded(tmp_path, synthetic_csvs):
    theirs = tutorial_lenet()
    assert list(theirs.state_dict()) != list(nets.create("lenet").state_dict())  # the names differ
    path = tmp_path / "lenet.pdparams"
    paddle.save(theirs.state_dict(), str(path))
    trainer = Trainer(tiny_config(synthetic_csvs, net="lenet", init_from=str(path)), tmp_path / "run", verbose=False)
    for a, b in zip(_state(theirs).values(), _state(trainer.net).values()):
        np.testing.assert_array_equal(a, b)
    init = trainer.state.init
    assert init["kind"] == "pdparams" and init["matched"] == "by position" and init["skipped"] == []
    import hashlib
    assert init["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with trainer.owned():
        trainer.fit()
        results = trainer.finish()
    assert results["init"]["sha256"] == init["sha256"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["init"]["path"] == str(path)


def test_paddle_model_save_files_of_the_tutorials_load_by_name(tmp_path, synthetic_csvs):
    net = nets.create("lenet")
    model = paddle.Model(net)
    model.prepare(paddle.optimizer.Adam(parameters=net.parameters()))
    model.save(str(tmp_path / "final"))  # final.pdparams + final.pdopt, as the notebooks save
    trainer = Trainer(tiny_config(synthetic_csvs, net="lenet", init_from=str(tmp_path / "final.pdparams")),
                      tmp_path / "run", verbose=False)
    assert trainer.state.init["matched"] == "by name"
    for k, v in _state(net).items():
        np.testing.assert_array_equal(trainer.net.state_dict()[k].numpy(), v)


def test_a_run_folder_and_its_export_seed_a_new_run_with_the_same_weights(tmp_path, synthetic_csvs):
    src = tmp_path / "src"
    train_and_evaluate(tiny_config(synthetic_csvs, net="lenet_bn", epochs=2), src, verbose=False)
    res = cli("export", src, "--which", "latest")
    assert res.returncode == 0, res.stderr
    from safetensors.numpy import load_file
    want = load_file(str(src / "checkpoints" / "latest" / "model.safetensors"))
    for origin, which in ((src, "latest"), (src / "export", "best")):
        t = Trainer(tiny_config(synthetic_csvs, net="lenet_bn", init_from=str(origin), init_which=which),
                    tmp_path / f"run-{origin.name}", verbose=False)
        assert t.state.init["kind"] == ("run" if origin == src else "export")
        for k, v in want.items():
            np.testing.assert_array_equal(t.net.state_dict()[k].numpy(), v, err_msg=f"{origin}: {k}")


def test_an_export_without_its_name_table_is_refused(tmp_path, synthetic_csvs):
    src = tmp_path / "src"
    train_and_evaluate(tiny_config(synthetic_csvs, net="lenet"), src, verbose=False)
    assert cli("export", src).returncode == 0
    meta = json.loads((src / "export" / "paddle_cnn_export.json").read_text())
    del meta["parameters"]
    (src / "export" / "paddle_cnn_export.json").write_text(json.dumps(meta))
    with pytest.raises(InitError, match="records no parameter names"):
        read_source(str(src / "export"))


def test_skip_classifier_keeps_the_fresh_last_layer_and_loads_the_rest(tmp_path, synthetic_csvs):
    donor = nets.create("lenet_bn")
    for p in donor.parameters():
        p.set_value(paddle.full_like(p, 0.5))
    path = tmp_path / "donor.pdparams"
    paddle.save(donor.state_dict(), str(path))
    cfg = tiny_config(synthetic_csvs, net="lenet_bn", init_from=str(path), init_skip_classifier=True)
    warm = Trainer(cfg, tmp_path / "a", verbose=False)
    fresh = Trainer(tiny_config(synthetic_csvs, net="lenet_bn"), tmp_path / "b", verbose=False)
    skipped = warm.state.init["skipped"]
    last = list(warm.net.state_dict())[-2:]
    assert sorted(skipped) == sorted(last)  # the final Linear's weight and bias
    for k, v in warm.net.state_dict().items():
        want = fresh.net.state_dict()[k].numpy() if k in skipped else donor.state_dict()[k].numpy()
        np.testing.assert_array_equal(v.numpy(), want, err_msg=k)


def test_skip_classifier_lets_the_class_count_differ(tmp_path):
    donor = nets.create("resnet18_small", num_classes=5)
    ours = nets.create("resnet18_small", num_classes=10)
    tensors = _state(donor)
    from paddle_cnn.training.warmstart import InitSource
    with pytest.raises(InitError, match="head.2.weight"):
        apply_init(ours, tensors, InitSource("donor", "safetensors", "0"), (1, 28, 28))
    src = apply_init(ours, tensors, InitSource("donor", "safetensors", "0"), (1, 28, 28), skip_classifier=True)
    assert src.skipped == ["head.2.weight", "head.2.bias"]
    np.testing.assert_array_equal(ours.state_dict()["stem.0.weight"].numpy(), tensors["stem.0.weight"])


@pytest.mark.parametrize("net, expected", [
    ("lenet", {"11.weight", "11.bias"}),
    ("resnet18_small", {"head.2.weight", "head.2.bias"}),
    ("googlenet_small", {"fc.weight", "fc.bias", "aux1.fc2.weight", "aux1.fc2.bias",
                         "aux2.fc2.weight", "aux2.fc2.bias"}),
])
def test_the_classifier_is_the_last_weighted_layer_and_each_auxiliary_head(net, expected):
    keys = set(classifier_keys(nets.create(net), nets.get_info(net).input_size))
    if net == "googlenet_small":  # its aux heads' last Linear, whatever the head calls it
        tails = {k for k in keys if k.startswith("aux")}
        assert {k.split(".")[0] for k in tails} == {"aux1", "aux2"} and len(tails) == 4
        assert {"fc.weight", "fc.bias"} <= keys and len(keys) == 6
    else:
        assert keys == expected


def test_nin_small_classifier_is_its_last_convolution():
    net = nets.create("nin_small")
    keys = classifier_keys(net, (1, 28, 28))
    assert len(keys) == 2 and all(list(net.state_dict()[k].shape)[0] == 10 for k in keys)


def test_another_architecture_is_refused_in_one_line_naming_the_tensors(tmp_path, synthetic_csvs):
    path = tmp_path / "other.pdparams"
    paddle.save(nets.create("lenet").state_dict(), str(path))
    train, test = synthetic_csvs
    res = cli("train", "--net", "standard_cnn", "--train-csv", train, "--test-csv", test, "--val-size", 80,
              "--init-from", path, "--out", tmp_path / "r")
    line = one_line_error(res, str(path), "not the same architecture", "[6, 1, 5, 5]")
    assert "nothing was loaded" in line
    assert not (tmp_path / "r").exists()  # refused before the folder was taken


@pytest.mark.parametrize("name, make, fragment", [
    ("missing.pdparams", None, "names nothing"),
    ("weights.bin", lambda p: p.write_bytes(b"x"), "unknown kind"),
    ("evil.pdparams", lambda p: p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR."), "refusing"),
    ("bad.safetensors", lambda p: p.write_bytes(b"\x00" * 20), "not a readable safetensors"),
])
def test_unreadable_or_unsafe_sources_are_refused_in_one_line(tmp_path, synthetic_csvs, name, make, fragment):
    path = tmp_path / name
    if make:
        make(path)
    train, test = synthetic_csvs
    res = cli("train", "--net", "lenet", "--train-csv", train, "--test-csv", test, "--val-size", 80,
              "--init-from", path, "--out", tmp_path / "r")
    one_line_error(res, fragment)


def test_skip_classifier_without_a_source_is_refused(tmp_path, synthetic_csvs):
    train, test = synthetic_csvs
    res = cli("train", "--net", "lenet", "--train-csv", train, "--test-csv", test, "--init-skip-classifier",
              "--out", tmp_path / "r")
    one_line_error(res, "init_skip_classifier needs init_from")


def test_a_resumed_warm_run_continues_from_its_checkpoint_not_the_source(tmp_path, synthetic_csvs):
    path = tmp_path / "w.pdparams"
    paddle.save(nets.create("lenet").state_dict(), str(path))
    cfg = tiny_config(synthetic_csvs, net="lenet", epochs=2, init_from=str(path))
    Trainer(cfg, tmp_path / "r", verbose=False).fit(epochs=1)
    path.unlink()  # gone: the resume must not need it
    t = Trainer(cfg, tmp_path / "r", resume=True, verbose=False)
    assert t.state.epoch == 1 and t.state.init["kind"] == "pdparams"
