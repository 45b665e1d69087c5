"""Per-layer analysis of any network: output size, receptive field, parameters and FLOPs.

Receptive fields are computed analytically while a sample runs through the net: each
convolution or pooling of kernel k, dilation r and stride s maps (rf, jump) to
(rf + (k_eff - 1) * jump, jump * s) with k_eff = k + (k - 1)(r - 1).

FLOPs are counted per forward pass of one sample, by hooks, because ``paddle.flops`` (Paddle
3.3) raises with NumPy >= 2.4 (it calls ``int()`` on a 1-element array). Conventions:
convolution and linear layers cost 2 FLOPs per multiply-accumulate (MAC) plus one per bias add;
pooling one per window element; batch norm two per element (scale and shift, as at inference);
activations one per element. Element-wise work outside layers (a residual add, a concat) is not
counted; it is a small fraction of any net here. ``paddle.flops`` reports MACs (+ biases) under
the name "FLOPs"; papers mostly quote MACs too, so both are reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from .nets._registry import effective_kernel, probe, window_geometry

__all__ = ["LayerRecord", "layer_table", "receptive_field", "format_table", "effective_kernel", "count_flops",
           "FlopCount"]

_CONV = (nn.Conv1D, nn.Conv2D, nn.Conv3D)
_POOL = (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D, nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)
_ADAPTIVE = (
    nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D,
    nn.AdaptiveMaxPool1D, nn.AdaptiveMaxPool2D, nn.AdaptiveMaxPool3D,
)


@dataclass
class LayerRecord:
    """One leaf layer as seen during a forward pass (shapes exclude the batch dimension)."""

    name: str
    type: str
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    params: int
    # Per spatial dimension; None once the output is no longer a spatial map (after Flatten).
    receptive_field: Optional[Tuple[int, ...]]
    jump: Optional[Tuple[int, ...]]
    macs: int = 0
    flops: int = 0
    # Input coordinate of the centre of output unit 0 per spatial dim (unit i is centred at start + i * jump).
    start: Optional[Tuple[float, ...]] = None


@dataclass(frozen=True)
class FlopCount:
    """Cost of one forward pass of one sample."""

    macs: int
    flops: int


_BN = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.BatchNorm)
_FREE = (nn.Flatten, nn.Dropout, nn.Dropout2D, nn.Dropout3D, nn.Identity)


def _layer_cost(layer: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> Tuple[int, int]:
    """(MACs, FLOPs) of one call of ``layer`` on one sample (``x``, ``y`` have a batch dimension of 1)."""
    out = int(np.prod(y.shape[1:]))
    if isinstance(layer, _CONV):
        macs = out * int(np.prod(layer.weight.shape[1:]))  # weight is (Cout, Cin / groups, *kernel)
        return macs, 2 * macs + (out if layer.bias is not None else 0)
    if isinstance(layer, nn.Linear):
        macs = out * int(layer.weight.shape[0])  # Paddle's Linear weight is (in, out)
        return macs, 2 * macs + (out if layer.bias is not None else 0)
    if isinstance(layer, _POOL) or isinstance(layer, _ADAPTIVE):
        ks = _kernel_stride(layer, x.shape[2:], y.shape[2:])
        return 0, out * int(np.prod(ks[0]))
    if isinstance(layer, _BN):
        return 0, 2 * out
    if isinstance(layer, _FREE):
        return 0, 0
    if not layer.parameters(include_sublayers=False) and tuple(x.shape) == tuple(y.shape):
        return 0, out  # activations
    return 0, 0


def _padding_before(layer: nn.Layer, in_spatial, out_spatial, k, s) -> Tuple[int, ...]:
    """Padding before the first element per spatial dim: the layer's own, SAME's share of the total
    (Paddle puts the odd pixel after), 0 for adaptive pooling."""
    geometry = window_geometry(layer, len(in_spatial))
    if geometry is None:
        return (0,) * len(in_spatial)
    if geometry[2]:
        return tuple(p[0] for p in geometry[2])
    total = [max((o - 1) * si + ki - i, 0) for i, o, ki, si in zip(in_spatial, out_spatial, k, s)]
    return tuple(t // 2 for t in total)


def _kernel_stride(layer: nn.Layer, in_spatial: Sequence[int], out_spatial: Sequence[int]):
    """Effective kernel and stride of a spatial layer, or None if the layer is not one we model."""
    geometry = window_geometry(layer, len(in_spatial))
    if geometry is not None:
        return geometry[0], geometry[1]
    if isinstance(layer, _ADAPTIVE):
        # Adaptive pooling behaves like stride in//out with a kernel covering the remainder.
        s = tuple(max(i // max(o, 1), 1) for i, o in zip(in_spatial, out_spatial))
        k = tuple(i - (o - 1) * si for i, o, si in zip(in_spatial, out_spatial, s))
        return k, s
    return None


def layer_table(net: nn.Layer, input_shape: Sequence[int]) -> List[LayerRecord]:
    """Run one zero sample of ``input_shape`` (C, ...) through ``net`` and describe each leaf layer.

    A leaf whose input was produced outside any layer (a residual add, a concat) takes the
    receptive field of the largest field recorded at that spatial size, which is exact for
    sums and concatenations of branches.
    """
    input_shape = tuple(int(v) for v in input_shape)
    n_spatial = len(input_shape) - 1
    records: List[LayerRecord] = []
    # id(tensor) -> (rf, jump, start); tensors are kept alive in `seen` so ids are not reused.
    fields: Dict[int, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[float, ...]]] = {}
    seen: List[paddle.Tensor] = []

    def field_of(t: paddle.Tensor):
        if id(t) in fields:
            return fields[id(t)]
        spatial = tuple(t.shape[2:])
        candidates = [f for tt, f in ((s, fields.get(id(s))) for s in seen)
                      if f is not None and tuple(tt.shape[2:]) == spatial]
        if candidates:
            return max(candidates, key=lambda f: f[0])
        return None

    def hook(layer, inputs, output):
        x = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        y = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(x, paddle.Tensor) or not isinstance(y, paddle.Tensor):
            return
        in_f = field_of(x)
        out_f = None
        spatial_out = len(y.shape) == n_spatial + 2
        if in_f is not None and spatial_out:
            ks = _kernel_stride(layer, x.shape[2:], y.shape[2:])
            rf, jump, start = in_f
            if ks is not None:
                k, s = ks
                before = _padding_before(layer, x.shape[2:], y.shape[2:], k, s)
                out_f = (tuple(r + (ki - 1) * j for r, ki, j in zip(rf, k, jump)),
                         tuple(j * si for j, si in zip(jump, s)),
                         tuple(st + ((ki - 1) / 2 - b) * j for st, ki, b, j in zip(start, k, before, jump)))
            elif tuple(x.shape[2:]) == tuple(y.shape[2:]):
                out_f = in_f  # element-wise layers (activations, norms, dropout) keep the field
        if out_f is not None:
            fields[id(y)] = out_f
        seen.extend([x, y])
        cost = _layer_cost(layer, x, y)
        records.append(LayerRecord(
            name=paths[id(layer)],
            type=type(layer).__name__,
            input_shape=tuple(x.shape[1:]),
            output_shape=tuple(y.shape[1:]),
            params=int(sum(int(np.prod(p.shape)) for p in layer.parameters(include_sublayers=False))),
            receptive_field=None if out_f is None else out_f[0],
            jump=None if out_f is None else out_f[1],
            start=None if out_f is None else out_f[2],
            macs=cost[0],
            flops=cost[1],
        ))

    paths = {id(layer): path for path, layer in net.named_sublayers() if not layer.sublayers()}
    handles = [layer.register_forward_post_hook(hook)
               for _, layer in net.named_sublayers() if id(layer) in paths]
    def run(x):
        fields[id(x)] = ((1,) * n_spatial, (1,) * n_spatial, (0.0,) * n_spatial)
        seen.append(x)
        return net(x)

    try:
        probe(net, input_shape, run=run)
    finally:
        for h in handles:
            h.remove()
    return records


def receptive_field_of(records: Sequence[LayerRecord]) -> Optional[Tuple[int, ...]]:
    """Receptive field of the last spatial feature map in a :func:`layer_table`, None without one."""
    fields = [r.receptive_field for r in records if r.receptive_field is not None]
    return list(fields[-1]) if fields else None


def cost_of(records: Sequence[LayerRecord]) -> Tuple[int, int]:
    """(MACs, FLOPs) of one forward pass, summed over a :func:`layer_table`."""
    return sum(r.macs for r in records), sum(r.flops for r in records)


def receptive_field(net: nn.Layer, input_shape: Sequence[int]) -> Tuple[int, ...]:
    """Receptive field (per spatial dim) of the last spatial feature map of ``net``."""
    field = receptive_field_of(layer_table(net, input_shape))
    if field is None:
        raise ValueError(f"{type(net).__name__} has no spatial layers to compute a receptive field for")
    return tuple(field)


def count_flops(net: nn.Layer, input_shape: Sequence[int]) -> FlopCount:
    """MACs and FLOPs of one forward pass of one sample of ``input_shape`` (C, ...) in eval mode."""
    return FlopCount(*cost_of(layer_table(net, input_shape)))


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def _fmt_dims(dims: Optional[Sequence[int]]) -> str:
    return "-" if dims is None else "x".join(str(d) for d in dims)


def format_table(records: Sequence[LayerRecord]) -> str:
    """A fixed-width text table of :func:`layer_table` records, with a total line."""
    rows = [("layer", "type", "output (C, ...)", "receptive field", "params", "FLOPs")]
    for r in records:
        rows.append((r.name, r.type, str(list(r.output_shape)), _fmt_dims(r.receptive_field), f"{r.params:,}",
                     f"{r.flops:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 4 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("-" * len(lines[0]))
    macs, flops = sum(r.macs for r in records), sum(r.flops for r in records)
    lines.append(f"total params: {sum(r.params for r in records):,}")
    lines.append(f"forward cost per sample: {flops:,} FLOPs ({human(flops)}), {macs:,} MACs ({human(macs)})")
    return "\n".join(lines)
