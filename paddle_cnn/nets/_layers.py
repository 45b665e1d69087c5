"""``Conv2D``: ``paddle.nn.Conv2D`` with a faster bias add on CPU, same parameters and results.

Paddle 3.3's CPU kernel for a broadcast add (the conv output ``[N, C, H, W]`` plus the bias as
``[1, C, 1, 1]``) is about 10x slower than expanding the bias to the output's shape and adding
tensors of equal shape; for the tutorials' small nets that one add costs as much as the
convolution (see ``benchmarks/speed.py``). Outputs, input and weight gradients are bit for bit
those of ``paddle.nn.Conv2D``; the bias gradient is summed in another order (float rounding).
Everything else, including the exported graph (built in static mode), is Paddle's own.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn


class Conv2D(nn.Conv2D):
    """Drop-in ``paddle.nn.Conv2D``: same arguments, parameter names and outputs."""

    # GPU kernels, static graphs (export) and non-zero padding modes take paddle.nn.Conv2D's own path.

    def forward(self, x):
        # Paddle's own path pads reflect/replicate/circular modes itself before its convolution.
        if (self.bias is None or self._padding_mode != "zeros" or not paddle.in_dynamic_mode()
                or not x.place.is_cpu_place()):
            return super().forward(x)
        out = F.conv2d(x, self.weight, bias=None, stride=self._stride, padding=self._padding,
                       dilation=self._dilation, groups=self._groups, data_format=self._data_format)
        shape = [1, -1, 1, 1] if self._data_format == "NCHW" else [1, 1, 1, -1]
        return out + paddle.expand_as(self.bias.reshape(shape), out)
