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
