"""``Conv2D``, ``Conv3D``, ``MaxPool2D``, ``AvgPool2D``, ``BatchNorm1D``, ``BatchNorm2D``, ``ReLU`` and ``Sigmoid`` (and :func:`relu`,
:func:`sigmoid`): Paddle's layers, same arguments, parameters and results, with a fast path for CPU
training and inference in dygraph; and :func:`conv_bn` / :class:`ConvNormReLU`, the conv-norm-ReLU
unit, which on that path runs as one operator in inference and hands NHWC maps along a chain
(:class:`ChannelsLast`).

Paddle 3.3's CPU conv kernels loop over the batch one sample at a time, its pooling kernels are
scalar loops and its ReLU, Sigmoid and evaluation-mode batch norm run on one thread; dygraph never
picks its oneDNN kernels. On a CPU tensor in dygraph these layers call
the oneDNN operators of :mod:`paddle_cnn.fast` (the whole batch per primitive, as PyTorch does);
elsewhere (GPU, static graphs such as export, padding modes or options the operators do not
cover, or ``PADDLE_CNN_FAST_OPS=0``) they are exactly Paddle's own layers. Without the operators,
Conv2D still expands the bias before adding it: Paddle's CPU broadcast add of ``[1, C, 1, 1]`` was
as slow as the convolution.
"""
from __future__ import annotations

import contextlib
import enum
import math
import os
import threading
from typing import List, Optional

import paddle
import paddle.nn.functional as F
from paddle import nn

from .. import fast
from ._paddle import conv_settings, norm_settings, watched
from ._registry import padding_pairs


def _fast_ops(x, ndim: Optional[int] = 4, bf16: bool = False) -> Optional[object]:
    """The operator module when ``x`` (of rank ``ndim``, any if None) can take the fast path, else None.
    Maps are float32, or with ``bf16`` also the bf16 ones a chain of operators hands on."""
    dtypes = (paddle.float32, paddle.bfloat16) if bf16 else (paddle.float32,)
    if (not paddle.in_dynamic_mode() or not x.place.is_cpu_place() or x.dtype not in dtypes
            or (ndim is not None and x.ndim != ndim)):
        return None
    return fast.ops()


def _four(padding) -> Optional[List[int]]:
    """[top, bottom, left, right] from Paddle's 2-D padding forms, None for strings ('SAME', 'VALID')
    and forms the shared parser does not know."""
    pairs = () if isinstance(padding, str) else padding_pairs(padding, 2)
    return [int(v) for pair in pairs for v in pair] if len(pairs) == 2 else None


def _pair(value) -> List[int]:
    return [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]


def _conv_args(conv: "Conv2D"):
    """(stride, [top, bottom, left, right], dilation, groups) for the operators, or None where they do not
    cover ``conv``'s settings (padding modes, NHWC, 'SAME'/'VALID')."""
    c = conv_settings(conv)
    if c.padding_mode != "zeros" or c.data_format != "NCHW" or not c.explicit:
        return None
    pads = _four(c.padding)
    return None if pads is None else (_pair(c.stride), pads, _pair(c.dilation), c.groups)


def _conv(ops, conv: "Conv2D", x, args, channels_last_in: bool, channels_last_out: bool, act: str = "none",
          bf16_out: bool = False):
    """The training operator for ``conv`` (``args`` from :func:`_conv_args`) on ``x``, then ``act``
    ('relu', 'sigmoid') fused in unless 'none'; bf16 maps out with ``bf16_out`` (a bf16 conv only)."""
    bf16_out = bf16_out and conv.bf16
    # An input that needs no gradient (the images, at the first layer) skips that pass.
    if conv.bias is None:
        op = ops.pcnn_conv2d_wgrad if x.stop_gradient else ops.pcnn_conv2d
        return op(x, conv.weight, *args, act, channels_last_in, channels_last_out, conv.bf16, bf16_out)
    op = ops.pcnn_conv2d_bias_wgrad if x.stop_gradient else ops.pcnn_conv2d_bias
    return op(x, conv.weight, conv.bias, *args, act, channels_last_in, channels_last_out, conv.bf16, bf16_out)


class Conv2D(nn.Conv2D):
    """Drop-in ``paddle.nn.Conv2D``: same arguments, parameter names and outputs."""

    bf16 = False  # compute in bf16 on the fast path (float32 tensors in and out); see set_precision

    def forward(self, x):
        ops = _fast_ops(x)
        args = None if ops is None else _conv_args(self)
        if args is not None:
            return _conv(ops, self, x, args, False, False)
        # Paddle's own path pads reflect/replicate/circular modes itself before its convolution.
        c = conv_settings(self)
        if self.bias is None or c.padding_mode != "zeros" or not paddle.in_dynamic_mode() or not x.place.is_cpu_place():
            return super().forward(x)
        out = F.conv2d(x, self.weight, bias=None, stride=c.stride, padding=c.given_padding,
                       dilation=c.dilation, groups=c.groups, data_format=c.data_format)
        shape = [1, -1, 1, 1] if c.data_format == "NCHW" else [1, 1, 1, -1]
        return out + paddle.expand_as(self.bias.reshape(shape), out)


def _conv3_args(conv: "Conv3D"):
    """(stride, [front, back, top, bottom, left, right], dilation, groups) for the 3-D operators, or None
    where they do not cover ``conv``'s settings (padding modes, NDHWC, 'SAME'/'VALID')."""
    c = conv_settings(conv)
    if c.padding_mode != "zeros" or c.data_format != "NCDHW" or not c.explicit:
        return None
    pairs = () if isinstance(c.padding, str) else padding_pairs(c.padding, 3)
    if len(pairs) != 3:
        return None
    triple = lambda v: [int(v)] * 3 if isinstance(v, int) else [int(u) for u in v]  # noqa: E731
    return triple(c.stride), [int(v) for pair in pairs for v in pair], triple(c.dilation), c.groups


def _conv3(conv: "Conv3D", x, relu: bool, channels_last: bool = False, bf16_out: bool = False):
    """``conv`` (then a ReLU, fused into the operator, if ``relu``) on ``x``; None off the fast path.
    With ``channels_last``, ``x`` and the result are NDHWC tensors ``[N, D, H, W, C]``; inside such a
    chain ``x`` may be bf16 maps, and a bf16 ``conv`` writes bf16 ones with ``bf16_out``."""
    ops = _fast_ops(x, ndim=5, bf16=channels_last and conv.bf16)
    args = None if ops is None else _conv3_args(conv)
    if args is None:
        return None
    bf16_out = bf16_out and channels_last and conv.bf16
    # An input that needs no gradient (the data, at the first layer) skips that pass.
    if conv.bias is None:
        op = ops.pcnn_conv3d_wgrad if x.stop_gradient else ops.pcnn_conv3d
        return op(x, conv.weight, *args, relu, channels_last, channels_last, conv.bf16, bf16_out)
    op = ops.pcnn_conv3d_bias_wgrad if x.stop_gradient else ops.pcnn_conv3d_bias
    return op(x, conv.weight, conv.bias, *args, relu, channels_last, channels_last, conv.bf16, bf16_out)


class Conv3D(nn.Conv3D):
    """Drop-in ``paddle.nn.Conv3D`` (HybridSN's): same arguments, parameter names and outputs."""

    bf16 = False  # as Conv2D's

    def forward(self, x):
        out = _conv3(self, x, relu=False)
        return super().forward(x) if out is None else out


def conv3d_relu(conv: Conv3D, act: nn.Layer, x):
    """``act(conv(x))`` for a ReLU ``act``: one operator on the fast path (the ReLU fused into the
    convolution), the two layers one after the other where a hook watches either (paddle.summary)."""
    out = None if _observed(conv, act) else _conv3(conv, x, relu=True)
    return act(conv(x)) if out is None else out


def conv3d_relu_folded(layers: nn.Sequential, x, bf16_out: bool = False):
    """The Conv3D-ReLU pairs of ``layers`` on ``x``, then the depth folded into the channels: the
    ``(N, C*D, H, W)`` maps (channel ``c*D + d``, as a reshape of NCDHW gives) of HybridSN's 2-D stage.

    On the fast path the maps stay NDHWC from the first convolution to the fold, which lands them as
    :class:`ChannelsLast` for :func:`conv_bn`: no reorder between Paddle's layout and oneDNN's. A bf16
    convolution hands bf16 maps to a bf16 one after it, and the last one to the fold where the caller
    says its consumer reads them (``bf16_out``: a bf16 2-D convolution). Where a hook watches a layer,
    or a layer is not a ReLU or not covered by the operators, the layers run one by one and the result
    is a plain tensor.
    """
    convs, acts = list(layers)[::2], list(layers)[1::2]
    ops = _fast_ops(x, ndim=5)
    if (ops is None or _observed(*convs, *acts) or not all(isinstance(a, nn.ReLU) for a in acts)
            or any(_conv3_args(c) is None for c in convs)):
        for conv, act in zip(convs, acts):
            x = conv3d_relu(conv, act, x)
        n, c, d, h, w = x.shape
        return x.reshape([n, c * d, h, w])
    n, c, d, h, w = x.shape
    # One channel (HybridSN's PCA cube) is already NDHWC: a reshape, no copy.
    x = x.reshape([n, d, h, w, 1]) if c == 1 else x.transpose([0, 2, 3, 4, 1]).contiguous()
    for i, conv in enumerate(convs):
        reads_bf16 = convs[i + 1].bf16 if i + 1 < len(convs) else bf16_out
        x = _conv3(conv, x, relu=True, channels_last=True, bf16_out=reads_bf16)
    return ChannelsLast(ops.pcnn_fold_depth(x))


PRECISIONS = ("fp32", "bf16")


def set_precision(net: nn.Layer, precision: str) -> nn.Layer:
    """Make every convolution of ``net`` compute in ``precision`` on the fast path: 'bf16' reads bf16
    maps and weights (converted from the float32 tensors as oneDNN reorders them anyway) and writes
    float32, with float32 accumulation; parameters, gradients and every other layer stay float32.
    Off the fast path (GPU, export, the operators switched off) a net computes in float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for layer in [net, *net.sublayers()]:
        if isinstance(layer, (Conv2D, Conv3D)):
            layer.bf16 = precision == "bf16"
    return net


def _pool(layer, x, channels_last: bool = False):
    """The fast pooling of ``x`` (NHWC data with ``channels_last``) for ``layer``'s settings, or None
    where the operator does not apply (a chain's NHWC maps may be bf16)."""
    ops = _fast_ops(x, bf16=channels_last)
    mode = layer.fast_mode()
    if ops is None or mode is None or layer.ceil_mode or layer.data_format != "NCHW" or isinstance(layer.padding, str):
        return None
    pads = _four(layer.padding)
    if pads is None:
        return None
    kernel = _pair(layer.ksize)
    stride = _pair(layer.stride if layer.stride is not None else layer.ksize)
    return ops.pcnn_pool2d(x, kernel, stride, pads, mode, channels_last)[0]


class MaxPool2D(nn.MaxPool2D):
    """Drop-in ``paddle.nn.MaxPool2D``."""

    def fast_mode(self) -> Optional[str]:
        """The operator's mode for this layer, None where it has none (the indices are asked for)."""
        return None if self.return_mask else "max"

    def forward(self, x):
        out = _pool(self, x)
        return super().forward(x) if out is None else out


class AvgPool2D(nn.AvgPool2D):
    """Drop-in ``paddle.nn.AvgPool2D`` (``exclusive`` as Paddle: padding not counted by default)."""

    def fast_mode(self) -> Optional[str]:
        return None if self.divisor else ("avg_exclusive" if self.exclusive else "avg_inclusive")

    def forward(self, x):
        out = _pool(self, x)
        return super().forward(x) if out is None else out


# A custom operator call costs ~15 us more than a built-in one; below this many elements Paddle's own
# activation is faster (measured: 64x120 sigmoid 18 us ours, 13 us Paddle's; 64x6x28x28 147 vs 512 us).
ACT_MIN_ELEMENTS = 1 << 15


def _act(x, mode: str):
    """``mode`` (relu, sigmoid) of ``x`` through the oneDNN operator, or None where it does not apply."""
    ops = _fast_ops(x, ndim=None)
    if ops is None or math.prod(x.shape) < ACT_MIN_ELEMENTS:
        return None
    return ops.pcnn_act(x, mode)


def relu(x, name=None):
    """Drop-in ``paddle.nn.functional.relu``."""
    out = _act(x, "relu")
    return F.relu(x, name) if out is None else out


_relu = relu  # for conv_bn, whose flag is called relu


def sigmoid(x, name=None):
    """Drop-in ``paddle.nn.functional.sigmoid``."""
    out = _act(x, "sigmoid")
    return F.sigmoid(x, name) if out is None else out


class ReLU(nn.ReLU):
    """Drop-in ``paddle.nn.ReLU``."""

    def forward(self, x):
        out = _act(x, "relu")
        return super().forward(x) if out is None else out


class Sigmoid(nn.Sigmoid):
    """Drop-in ``paddle.nn.Sigmoid``."""

    def forward(self, x):
        out = _act(x, "sigmoid")
        return super().forward(x) if out is None else out


# The operator's per-channel broadcast pays off on maps of at least 14x14; on 7x7 and smaller
# Paddle's kernel was faster (256x64x7x7: 328 us ours, 288 us Paddle's; 256x32x14x14: 363 vs 510).
NORM_MIN_PLANE = 14 * 14


def _affine_norm(bn: "BatchNorm2D") -> bool:
    """True when ``bn`` is a fixed per-channel affine map: running statistics outside autograd
    (evaluation and prediction run under paddle.no_grad), NCHW, with its scale and shift."""
    n = norm_settings(bn)
    return (not bn.training and n.use_global_stats is not False and not paddle.is_grad_enabled()
            and n.data_format == "NCHW" and bn.weight is not None and bn.bias is not None)


def _data_parallel_statistics(bn) -> bool:
    """True when ``bn`` normalises with batch statistics inside a data-parallel job: then the batch is
    the global one, split over the processes, and its statistics must be too."""
    return (bn.training and not norm_settings(bn).use_global_stats
            and int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) > 1)


class _SumOverProcesses(paddle.autograd.PyLayer):
    """All-reduce (sum) that autograd sees through: the gradient of a sum over processes is the
    sum of every process's gradient, so each one gets the part of the others' losses that flows
    through the shared statistics (what SyncBatchNorm's backward does on GPUs)."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        paddle.distributed.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        g = dy.clone()
        paddle.distributed.all_reduce(g)
        return g


def synchronized_batch_norm(x, bn, channel_axis: int = 1):
    """``bn`` in training with the statistics of the global batch, on any device: two all-reduces of
    per-channel sums (the mean, then the squared deviations, as Paddle's kernel computes them).

    Paddle's ``SyncBatchNorm`` runs on CUDA only; without this, two CPU processes normalise each half
    of a batch by its own statistics and no longer reproduce one process (lenet_bn: val 0.6953 vs
    0.6992 after 2 epochs). Running statistics are updated as Paddle does (biased variance), so all
    processes keep the same ones.
    """
    axis = channel_axis % x.ndim
    axes = [a for a in range(x.ndim) if a != axis]
    channels = x.shape[axis]
    shape = [1] * x.ndim
    shape[axis] = channels
    local = paddle.full([1], float(math.prod(x.shape) // channels), dtype=x.dtype)
    stats = _SumOverProcesses.apply(paddle.concat([x.sum(axes), local]))
    count = stats[channels:]
    mean = stats[:channels] / count
    centred = x - mean.reshape(shape)
    variance = _SumOverProcesses.apply((centred * centred).sum(axes)) / count
    n = norm_settings(bn)
    y = centred / paddle.sqrt(variance.reshape(shape) + n.epsilon)
    if bn.weight is not None:
        y = y * bn.weight.reshape(shape)
    if bn.bias is not None:
        y = y + bn.bias.reshape(shape)
    with paddle.no_grad():  # running = momentum * running + (1 - momentum) * batch
        n.mean.lerp_(mean.detach(), 1.0 - n.momentum)
        n.variance.lerp_(variance.detach(), 1.0 - n.momentum)
    return y


class BatchNorm1D(nn.BatchNorm1D):
    """Drop-in ``paddle.nn.BatchNorm1D`` whose batch statistics span every process of a data-parallel job."""

    def forward(self, x):
        if _data_parallel_statistics(self):
            return synchronized_batch_norm(x, self, 1 if norm_settings(self).data_format in ("NC", "NCL") else -1)
        return super().forward(x)


class BatchNorm2D(nn.BatchNorm2D):
    """Drop-in ``paddle.nn.BatchNorm2D``. With running statistics outside autograd it is a
    per-channel affine map, computed by the oneDNN operator; training keeps Paddle's kernel (as fast
    as PyTorch's here), and in a data-parallel job normalises by the global batch's statistics."""

    def forward(self, x):
        if _data_parallel_statistics(self):
            return synchronized_batch_norm(x, self, 1 if norm_settings(self).data_format == "NCHW" else -1)
        if _affine_norm(self):
            ops = _fast_ops(x)  # 4-D CPU float32 in dygraph
            if ops is not None and x.shape[2] * x.shape[3] >= NORM_MIN_PLANE:
                n = norm_settings(self)
                return ops.pcnn_batch_norm_infer(x, n.mean, n.variance, self.weight, self.bias, n.epsilon)
        return super().forward(x)


class ChannelsLast:
    """Feature maps held as NHWC data (a ``[N, H, W, C]`` tensor) between the operators of a chain.

    oneDNN computes these convolutions in NHWC; handing its output on as is saves the reorders
    around every convolution of a chain (a ResNet's stages): a third of oneDNN's time in
    resnet18_small's evaluation and 15% of a training step. Only :func:`conv_bn` reads it;
    :func:`plain` turns it back into the NCHW tensor every other layer expects.
    """

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    @property
    def shape(self) -> List[int]:
        """The NCHW shape of the maps (what paddle.summary's hooks read)."""
        n, h, w, c = self.data.shape
        return [n, c, h, w]


_chain = threading.local()


@contextlib.contextmanager
def channels_last_chain():
    """Inside, ``conv_bn(..., channels_last=True)`` may return :class:`ChannelsLast` maps; outside it
    returns NCHW tensors, so a block called on its own gives what a Paddle layer gives. A net
    opens it around the layers that pass maps to each other and calls :func:`plain` on the result."""
    depth = getattr(_chain, "depth", 0)
    _chain.depth = depth + 1
    try:
        yield
    finally:
        _chain.depth = depth


def in_channels_last_chain() -> bool:
    """True inside :func:`channels_last_chain` (on this thread)."""
    return getattr(_chain, "depth", 0) > 0


def _float32(data):
    """A chain's NHWC data in float32 (bf16 maps are cast; Paddle's own kernels take float32)."""
    return data.astype(paddle.float32) if data.dtype == paddle.bfloat16 else data


def plain(x):
    """``x`` as a float32 NCHW tensor (a plain tensor is returned as is)."""
    return _float32(x.data).transpose([0, 3, 1, 2]).contiguous() if isinstance(x, ChannelsLast) else x


def _nhwc(x):
    """The float32 NHWC data of ``x``."""
    return _float32(x.data) if isinstance(x, ChannelsLast) else x.transpose([0, 2, 3, 1]).contiguous()


def _observed(*layers) -> bool:
    """True when a forward hook watches one of ``layers`` (paddle.summary's do): the operators below
    would skip them, so they run one by one."""
    return any(watched(layer) for layer in layers)


def _norm_op_trains(bn: BatchNorm2D) -> bool:
    """True when ``bn`` trains through the oneDNN operator (batch statistics, scale and shift, one
    process), the only norm here that takes bf16 maps."""
    n = norm_settings(bn)
    return (bn.training and not n.use_global_stats and bn.weight is not None and bn.bias is not None
            and not _data_parallel_statistics(bn))


def _batch_norm_nhwc(ops, bn: BatchNorm2D, x, relu: bool):
    """(``bn`` (an NCHW layer) on NHWC data, whether ``relu`` was applied too).

    With batch statistics it is the oneDNN operator (ReLU fused in), and the batch mean and variance
    go into the running statistics as Paddle's kernel puts them; otherwise Paddle's kernel.
    """
    if _data_parallel_statistics(bn):
        return synchronized_batch_norm(x, bn, channel_axis=3), False
    n = norm_settings(bn)
    if _norm_op_trains(bn):
        y, mean, variance, _ = ops.pcnn_batch_norm_train(x, bn.weight, bn.bias, n.epsilon, relu)
        with paddle.no_grad():  # running = momentum * running + (1 - momentum) * batch
            n.mean.lerp_(mean, 1.0 - n.momentum)
            n.variance.lerp_(variance, 1.0 - n.momentum)
        return y, relu
    return F.batch_norm(_float32(x), n.mean, n.variance, weight=bn.weight, bias=bn.bias, training=bn.training,
                        momentum=n.momentum, epsilon=n.epsilon, data_format="NHWC",
                        use_global_stats=n.use_global_stats), False


class UnitPath(enum.Enum):
    """How :func:`conv_bn` runs a conv-norm-add-ReLU unit."""

    FUSED_INFERENCE = "one oneDNN convolution, the norm folded in, the add and ReLU as post-ops"
    CHANNELS_LAST_TRAINING = "the convolution and the norm operators on NHWC maps, handed on as ChannelsLast"
    LAYER_BY_LAYER = "the layers one after the other, NCHW out"


def unit_path(conv: Conv2D, bn: Optional[BatchNorm2D], x, channels_last: bool = False) -> UnitPath:
    """The path :func:`conv_bn` takes for these layers and input, and why: the fast path needs the
    operators for ``x`` (CPU float32 in dygraph), settings they cover and no hook on the layers; then
    without autograd and with running statistics it is fused, and inside :func:`channels_last_chain`
    a unit asked for ``channels_last`` trains on NHWC maps."""
    data = x.data if isinstance(x, ChannelsLast) else x
    if _fast_ops(data, bf16=conv.bf16) is None or _observed(conv, bn) or _conv_args(conv) is None:
        return UnitPath.LAYER_BY_LAYER
    if not paddle.is_grad_enabled() and (bn is None or _affine_norm(bn)):
        return UnitPath.FUSED_INFERENCE
    if channels_last and in_channels_last_chain() and (bn is None or norm_settings(bn).data_format == "NCHW"):
        return UnitPath.CHANNELS_LAST_TRAINING
    return UnitPath.LAYER_BY_LAYER


def conv_bn(conv: Conv2D, bn: Optional[BatchNorm2D], x, relu: bool = False, residual=None,
            channels_last: bool = False, bf16_out: bool = False):
    """``conv(x)``, then ``bn`` (if given), plus ``residual`` (if given; of the output's shape), then
    ReLU if ``relu``: the conv-norm(-add)(-ReLU) unit of ResNets and Inception blocks, on the path
    :func:`unit_path` names. ``x`` and ``residual`` may be NCHW tensors or :class:`ChannelsLast` maps;
    the result is :class:`ChannelsLast` with ``channels_last`` inside :func:`channels_last_chain` on
    the fast path, an NCHW tensor otherwise (a block called on its own gives what a Paddle layer gives).
    With ``bf16_out``, a bf16 ``conv`` hands bf16 maps on (:class:`ChannelsLast` only; :func:`plain`
    returns float32): in inference where the unit has no residual, in training where its norm (if
    any) runs through the operator that takes them; the residual add is then bf16 too.
    """
    path = unit_path(conv, bn, x, channels_last)
    channels_last = channels_last and in_channels_last_chain()
    bf16_out = bf16_out and conv.bf16 and channels_last
    if path is UnitPath.FUSED_INFERENCE:
        return _fused_inference(conv, bn, x, relu, residual, channels_last, bf16_out and residual is None)
    if path is UnitPath.CHANNELS_LAST_TRAINING:
        return _channels_last_training(conv, bn, x, relu, residual, bf16_out and (bn is None or _norm_op_trains(bn)))
    return _layer_by_layer(conv, bn, x, relu, residual)


def _fused_inference(conv, bn, x, relu, residual, channels_last, bf16_out=False):
    cl_in = isinstance(x, ChannelsLast)
    data = x.data if cl_in else x
    n = None if bn is None else norm_settings(bn)
    norm = [None] * 4 if bn is None else [n.mean, n.variance, bn.weight, bn.bias]
    res = None if residual is None else (_nhwc(residual) if channels_last else plain(residual))
    out = fast.ops().pcnn_conv_infer(data, conv.weight, conv.bias, *norm, res, *_conv_args(conv),
                                     1e-5 if bn is None else n.epsilon, relu, cl_in, channels_last, conv.bf16,
                                     bf16_out)
    return ChannelsLast(out) if channels_last else out


def _channels_last_training(conv, bn, x, relu, residual, bf16_out=False):
    ops = fast.ops()
    cl_in = isinstance(x, ChannelsLast)
    fuse = relu and bn is None and residual is None  # the ReLU straight after the convolution: one operator
    y = _conv(ops, conv, x.data if cl_in else x, _conv_args(conv), cl_in, True, "relu" if fuse else "none", bf16_out)
    done = fuse  # whether the ReLU ran already (fused into the convolution or the norm)
    if bn is not None:
        y, done = _batch_norm_nhwc(ops, bn, y, relu and residual is None)
    if residual is not None:  # the add and the ReLU after it: one operator, in the maps' dtype
        r = residual.data if isinstance(residual, ChannelsLast) else _nhwc(residual)
        if r.dtype != y.dtype:
            r = r.astype(y.dtype)
        y, done = ops.pcnn_add(y, r, relu and not done), relu
    return ChannelsLast(_relu(y) if relu and not done else y)


def _layer_by_layer(conv, bn, x, relu, residual):
    ops = _fast_ops(x.data, bf16=conv.bf16) if isinstance(x, ChannelsLast) else None
    args = None if ops is None or _observed(conv, bn) else _conv_args(conv)
    if args is not None:  # NHWC maps read as they are (plain() would transpose them)
        y = _conv(ops, conv, x.data, args, True, False)
    else:
        y = conv(plain(x))
    if bn is not None:
        y = bn(y)
    if residual is not None:
        y = y + plain(residual)
    return _relu(y) if relu else y


def conv_relu(conv: Conv2D, act: nn.Layer, x):
    """``act(conv(x))`` for a ReLU ``act``, as an NCHW tensor: :func:`conv_bn` without a norm (``x`` may
    be :class:`ChannelsLast`), the ReLU run on its own where a hook watches it."""
    return act(conv_bn(conv, None, x)) if _observed(act) else conv_bn(conv, None, x, relu=True)


class ConvNormReLU(nn.Sequential):
    """``nn.Sequential(conv, bn, ReLU())`` (same sublayers and parameter names) whose inference runs as
    one fused operator (:func:`conv_bn`); ``channels_last`` as there."""

    def __init__(self, conv: Conv2D, bn: BatchNorm2D, act: ReLU, channels_last: bool = False,
                 bf16_out: bool = False):
        super().__init__(conv, bn, act)
        self.channels_last = channels_last
        self.bf16_out = bf16_out  # only for a consumer that takes bf16 maps (a ResNet's blocks)

    def forward(self, x):
        conv, bn, act = list(self.children())
        if _observed(act):
            return super().forward(plain(x))
        return conv_bn(conv, bn, x, relu=True, channels_last=self.channels_last, bf16_out=self.bf16_out)


class Sequential(nn.Sequential):
    """Drop-in ``paddle.nn.Sequential`` (same sublayers and parameter names) whose convolutions,
    batch norms, ReLU/Sigmoid and pooling hand NHWC maps on to each other on the fast path.

    Layer by layer, every convolution reorders its NCHW input into oneDNN's layout and its output
    back, and a ReLU after it is one more pass over the maps: a third of standard_cnn's evaluation
    time. Here a Conv2D (and a BatchNorm2D) followed by a ReLU runs as one :func:`conv_bn` unit
    (one fused operator in inference), pooling and activations run on the NHWC data as it is, and
    only a layer of another kind (Flatten, Linear, Dropout, a block of your own) is given the NCHW
    tensor it expects. Off the fast path, or where a hook watches any layer inside (paddle.summary),
    it is exactly ``nn.Sequential``.
    """

    def forward(self, x):
        data = x.data if isinstance(x, ChannelsLast) else x
        if _fast_ops(data) is None or _observed(*self.sublayers()):
            return super().forward(plain(x))
        with channels_last_chain():
            return plain(self._chain(x))

    def _chain(self, x):
        """The layers on ``x``: :class:`ChannelsLast` maps where the operators ran, else tensors."""
        layers = list(self.children())
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, Sequential):
                x = layer._chain(x)
            elif isinstance(layer, ConvNormReLU):
                conv, bn, _ = layer.children()
                x = conv_bn(conv, bn, x, relu=True, channels_last=True, bf16_out=_takes_bf16(layers, i + 1))
            elif (isinstance(layer, Conv2D) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.Sigmoid)
                  and paddle.is_grad_enabled() and _conv_args(layer) is not None):
                # LeNet's conv-Sigmoid in training: one operator (inference keeps them apart: the fused
                # inference operator knows ReLU only).
                cl_in = isinstance(x, ChannelsLast)
                x = ChannelsLast(_conv(fast.ops(), layer, x.data if cl_in else x, _conv_args(layer), cl_in, True,
                                       "sigmoid", _takes_bf16(layers, i + 2)))
                i += 2
                continue
            elif isinstance(layer, Conv2D):
                bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], BatchNorm2D) else None
                j = i + 1 + (bn is not None)
                then_relu = j < len(layers) and isinstance(layers[j], nn.ReLU)
                x = conv_bn(layer, bn, x, relu=then_relu, channels_last=True,
                            bf16_out=_takes_bf16(layers, j + then_relu))
                i = j + then_relu
                continue
            elif isinstance(layer, (MaxPool2D, AvgPool2D)) and isinstance(x, ChannelsLast):
                out = _pool(layer, x.data, channels_last=True)
                x = layer(plain(x)) if out is None else ChannelsLast(out)
            elif isinstance(layer, (nn.ReLU, nn.Sigmoid)) and isinstance(x, ChannelsLast):
                mode = "relu" if isinstance(layer, nn.ReLU) else "sigmoid"
                if x.data.dtype == paddle.bfloat16:  # bf16 maps: the operator at any size
                    x = ChannelsLast(fast.ops().pcnn_act(x.data, mode))
                else:
                    x = ChannelsLast((relu if mode == "relu" else sigmoid)(x.data))
            else:
                x = layer(plain(x))
            i += 1
        return x


def _takes_bf16(layers, i: int) -> bool:
    """True when ``layers[i]`` reads a chain's NHWC maps as they are, so a bf16 convolution before it
    may hand them on in bf16 (another layer is given float32 NCHW maps)."""
    return i < len(layers) and isinstance(layers[i], (Conv2D, ConvNormReLU, MaxPool2D, AvgPool2D, nn.ReLU,
                                                       nn.Sigmoid, Sequential))
