"""``Conv2D``, ``MaxPool2D``, ``AvgPool2D``, ``BatchNorm2D``, ``ReLU`` and ``Sigmoid`` (and :func:`relu`,
:func:`sigmoid`): Paddle's layers, same arguments, parameters and results, with a fast path for CPU
training and inference in dygraph.

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

import math
from typing import List, Optional

import paddle
import paddle.nn.functional as F
from paddle import nn

from .. import fast
from ._registry import padding_pairs


def _fast_ops(x, ndim: Optional[int] = 4) -> Optional[object]:
    """The operator module when ``x`` (of rank ``ndim``, any if None) can take the fast path, else None."""
    if (not paddle.in_dynamic_mode() or not x.place.is_cpu_place() or x.dtype != paddle.float32
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


class Conv2D(nn.Conv2D):
    """Drop-in ``paddle.nn.Conv2D``: same arguments, parameter names and outputs."""

    def forward(self, x):
        ops = _fast_ops(x)
        if (ops is not None and self._padding_mode == "zeros" and self._data_format == "NCHW"
                and self._padding_algorithm == "EXPLICIT"):
            pads = _four(self._updated_padding)
            if pads is not None:
                args = (_pair(self._stride), pads, _pair(self._dilation), int(self._groups))
                # An input that needs no gradient (the images, at the first layer) skips that pass.
                if self.bias is None:
                    op = ops.pcnn_conv2d_wgrad if x.stop_gradient else ops.pcnn_conv2d
                    return op(x, self.weight, *args)
                op = ops.pcnn_conv2d_bias_wgrad if x.stop_gradient else ops.pcnn_conv2d_bias
                return op(x, self.weight, self.bias, *args)
        # Paddle's own path pads reflect/replicate/circular modes itself before its convolution.
        if (self.bias is None or self._padding_mode != "zeros" or not paddle.in_dynamic_mode()
                or not x.place.is_cpu_place()):
            return super().forward(x)
        out = F.conv2d(x, self.weight, bias=None, stride=self._stride, padding=self._padding,
                       dilation=self._dilation, groups=self._groups, data_format=self._data_format)
        shape = [1, -1, 1, 1] if self._data_format == "NCHW" else [1, 1, 1, -1]
        return out + paddle.expand_as(self.bias.reshape(shape), out)


def _pool(layer, x, mode: str):
    """The fast pooling of ``x`` for ``layer``'s settings, or None where the operator does not apply."""
    ops = _fast_ops(x)
    if ops is None or layer.ceil_mode or layer.data_format != "NCHW" or isinstance(layer.padding, str):
        return None
    pads = _four(layer.padding)
    if pads is None:
        return None
    kernel = _pair(layer.ksize)
    stride = _pair(layer.stride if layer.stride is not None else layer.ksize)
    return ops.pcnn_pool2d(x, kernel, stride, pads, mode)[0]


class MaxPool2D(nn.MaxPool2D):
    """Drop-in ``paddle.nn.MaxPool2D``."""

    def forward(self, x):
        out = None if self.return_mask else _pool(self, x, "max")
        return super().forward(x) if out is None else out


class AvgPool2D(nn.AvgPool2D):
    """Drop-in ``paddle.nn.AvgPool2D`` (``exclusive`` as Paddle: padding not counted by default)."""

    def forward(self, x):
        out = None if self.divisor else _pool(self, x, "avg_exclusive" if self.exclusive else "avg_inclusive")
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


class BatchNorm2D(nn.BatchNorm2D):
    """Drop-in ``paddle.nn.BatchNorm2D``. With running statistics outside autograd (evaluation and
    prediction run under paddle.no_grad) it is a per-channel affine map, computed by the oneDNN
    operator; training keeps Paddle's kernel (as fast as PyTorch's here)."""

    def forward(self, x):
        if (not self.training and self._use_global_stats is not False and not paddle.is_grad_enabled()
                and self._data_format == "NCHW" and self.weight is not None and self.bias is not None):
            ops = _fast_ops(x)  # 4-D CPU float32 in dygraph
            if ops is not None and x.shape[2] * x.shape[3] >= NORM_MIN_PLANE:
                return ops.pcnn_batch_norm_infer(x, self._mean, self._variance, self.weight, self.bias,
                                                 float(self._epsilon))
        return super().forward(x)
