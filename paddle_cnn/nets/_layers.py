"""``Conv2D``, ``MaxPool2D`` and ``AvgPool2D``: Paddle's layers, same arguments, parameters and results,
with a fast path for CPU training and inference in dygraph.

Paddle 3.3's CPU conv kernels loop over the batch one sample at a time and its pooling kernels are
scalar loops; dygraph never picks its oneDNN kernels. On a CPU tensor in dygraph these layers call
the oneDNN operators of :mod:`paddle_cnn.fast` (the whole batch per primitive, as PyTorch does);
elsewhere (GPU, static graphs such as export, padding modes or options the operators do not
cover, or ``PADDLE_CNN_FAST_OPS=0``) they are exactly Paddle's own layers. Without the operators,
Conv2D still expands the bias before adding it: Paddle's CPU broadcast add of ``[1, C, 1, 1]`` was
as slow as the convolution.
"""
from __future__ import annotations

from typing import List, Optional

import paddle
import paddle.nn.functional as F
from paddle import nn

from .. import fast
from ._registry import padding_pairs


def _fast_ops(x) -> Optional[object]:
    """The operator module when ``x`` can take the fast path here, else None."""
    if not paddle.in_dynamic_mode() or not x.place.is_cpu_place() or x.dtype != paddle.float32 or x.ndim != 4:
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
