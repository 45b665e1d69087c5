"""Whole-set evaluation (paddle_cnn/training/evaluation.py): the confusion matrix's orientation, and
evaluation that leaves a batch-norm net exactly as it found it."""
import numpy as np
import paddle

from paddle_cnn import nets
from paddle_cnn.training.evaluation import confusion_matrix, predict_logits


def test_confusion_rows_are_true_classes_and_columns_predictions():
    labels = np.array([0, 0, 0, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    m = confusion_matrix(predicted, labels, 3)
    assert m.tolist() == [[1, 2, 0], [0, 1, 0], [1, 0, 1]]
    assert m.sum(axis=1).tolist() == np.bincount(labels, minlength=3).tolist()  # row sums: true counts
    assert m.sum(axis=0).tolist() == np.bincount(predicted, minlength=3).tolist()  # column sums: predictions


def test_evaluation_leaves_batch_norm_statistics_and_the_training_flag_as_they_were():
    net = nets.create("lenet_bn")
    net.train()
    x = np.random.default_rng(0).normal(size=(64, 1, 28, 28)).astype("float32")
    net(paddle.to_tensor(x))  # some training-mode statistics
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    logits = predict_logits(net, x, batch_size=16)
    assert net.training and all(layer.training for layer in net.sublayers())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    # and it really ran in eval mode: the running statistics, not each batch's own
    net.eval()
    with paddle.no_grad():
        want = net(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-6)
    assert not net.training
    predict_logits(net, x[:8])
    assert not net.training and not any(layer.training for layer in net.sublayers())


def test_predict_from_a_run_and_from_an_export_gives_the_logits_saved_at_training(tmp_path, csv_pair):
    """With a normalisation other than the default [0, 1] scaling: a predictor that ignored the run's
    normalisation would disagree with the probabilities the run itself saved."""
    from paddle_cnn.inference import export_run, open_predictor
    from paddle_cnn.training import RunConfig, train_and_evaluate
    from paddle_cnn.training.evaluation import log_softmax

    cfg = RunConfig(net="standard_cnn", train_csv=str(csv_pair[0]), test_csv=str(csv_pair[1]), val_size=80,
                    epochs=1, batch_size=64, log_every=1000, normalize="fashion-mnist")
    trainer, _ = train_and_evaluate(cfg, tmp_path / "run", verbose=False)
    saved = np.load(tmp_path / "run" / "predictions" / "test.npz")
    want = log_softmax(saved["logits"])
    seen = want > np.log(1e-6)  # log-probabilities a float32 softmax still resolves
    images = trainer.data.test.images
    assert images.dtype == np.uint8
    unit_scaled = log_softmax(predict_logits(trainer.net, images[:, None].astype("float32") / 255.0))
    assert np.abs(unit_scaled - want)[seen].max() > 0.05  # the normalisation matters for these numbers
    for source in (tmp_path / "run", export_run(tmp_path / "run", "latest", tmp_path / "export")):
        got = np.log(np.maximum(open_predictor(source, "latest").probabilities(images), 1e-30))
        np.testing.assert_allclose(got[seen], want[seen], atol=2e-3, err_msg=str(source))
