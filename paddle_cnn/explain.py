"""Pictures of what a trained net sees, drawn for any registered image net (what the tutorials draw by hand):

- the feature maps of every convolution stage (the last convolution at each resolution);
- Grad-CAM (Selvaraju et al. 2017) of the top class over the input: the last stage's maps weighted
  by the spatial mean of the class score's gradient, ReLU'd and upsampled;
- the effective receptive field (Luo et al. 2016) of one output unit of each stage, the centre one:
  ``|d unit / d input|``, drawn with the theoretical receptive field (from
  :func:`paddle_cnn.analysis.layer_table`) as a box around it. The dilated-convolution notebook
  draws figures 1-4 to show that ``dilated_cnn`` sees a wider field than ``standard_cnn``; here
  the same comparison is measured on the trained nets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from . import analysis


@dataclass(frozen=True)
class Stage:
    """The last convolution at one resolution, and the theoretical field of its units."""

    layer: str  # path of the convolution in the net (``features.3``, ``stages.1.1.conv2``)
    shape: Tuple[int, ...]  # (C, H, W) of its output
    receptive_field: Tuple[int, ...]
    jump: Tuple[int, ...]
    start: Tuple[float, ...]

    def centre_unit(self) -> Tuple[int, int]:
        return self.shape[1] // 2, self.shape[2] // 2

    def box(self, unit: Tuple[int, int]) -> Tuple[float, float, float, float]:
        """(top, left, bottom, right) in input pixels of the theoretical field of ``unit`` (unclipped)."""
        cy, cx = (s + u * j for s, u, j in zip(self.start, unit, self.jump))
        hy, hx = ((r - 1) / 2 for r in self.receptive_field)
        return cy - hy, cx - hx, cy + hy, cx + hx


def conv_stages(net: nn.Layer, input_shape: Sequence[int]) -> List[Stage]:
    """One stage per output resolution of the net's 2-D convolutions, in forward order."""
    records = [r for r in analysis.layer_table(net, input_shape)
               if r.type.endswith("Conv2D") and r.receptive_field is not None and len(r.output_shape) == 3]
    last: Dict[Tuple[int, int], analysis.LayerRecord] = {}
    for r in records:
        last.pop(r.output_shape[1:], None)  # re-insert: ordered by the last conv at that size
        last[r.output_shape[1:]] = r
    return [Stage(r.name, tuple(r.output_shape), tuple(r.receptive_field), tuple(r.jump), tuple(r.start))
            for r in last.values()]


@dataclass
class Explanation:
    """Everything drawn for one image."""

    probs: np.ndarray  # (classes,)
    top: int
    maps: Dict[str, np.ndarray]  # stage layer -> (C, h, w) feature maps
    grad_cam: np.ndarray  # (H, W) in [0, 1], over the input
    fields: Dict[str, np.ndarray]  # stage layer -> (H, W) |gradient| of its centre unit, max 1


def explain(net: nn.Layer, x: np.ndarray, stages: Sequence[Stage]) -> Explanation:
    """Feature maps, Grad-CAM and effective receptive fields for one input ``x`` (C, H, W), in eval mode."""
    layers = dict(net.named_sublayers())
    captured: Dict[str, paddle.Tensor] = {}
    hooks = [layers[s.layer].register_forward_post_hook(
        lambda layer, inputs, output, name=s.layer: captured.__setitem__(name, output)) for s in stages]
    was_training = net.training
    net.eval()
    try:
        inp = paddle.to_tensor(x[None].astype(np.float32), stop_gradient=False)
        logits = net(inp)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        probs = paddle.nn.functional.softmax(logits, axis=-1).numpy()[0]
        top = int(probs.argmax())
        last = captured[stages[-1].layer]
        (grad,) = paddle.grad([logits[0, top]], [last], retain_graph=True)
        weights = grad.mean(axis=[2, 3], keepdim=True)
        cam = paddle.nn.functional.relu((weights * last).sum(axis=1))[0].numpy()
        fields = {}
        for s in stages:
            i, j = s.centre_unit()
            (g,) = paddle.grad([captured[s.layer][0, :, i, j].sum()], [inp], retain_graph=True)
            field = np.abs(g.numpy()[0]).sum(0)
            fields[s.layer] = field / max(float(field.max()), 1e-12)
        maps = {s.layer: captured[s.layer].numpy()[0] for s in stages}
    finally:
        for h in hooks:
            h.remove()
        if was_training:
            net.train()
    import cv2

    h, w = x.shape[-2:]
    cam = cv2.resize(cam.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    cam = cam / cam.max() if cam.max() > 0 else cam
    return Explanation(probs, top, maps, cam, fields)


def field_extent(field: np.ndarray, share: float = 0.95) -> float:
    """The side of the smallest centred square around the field's centre of mass that holds ``share``
    of its gradient mass: one number for how wide a unit really looks."""
    total = float(field.sum())
    if total <= 0:
        return 0.0
    ys, xs = np.indices(field.shape)
    cy, cx = float((ys * field).sum() / total), float((xs * field).sum() / total)
    radius = np.maximum(np.abs(ys - cy), np.abs(xs - cx))
    order = np.argsort(radius, axis=None)
    mass = np.cumsum(field.ravel()[order]) / total
    return float(2 * radius.ravel()[order][np.searchsorted(mass, share)] + 1)


def draw(image: np.ndarray, ex: Explanation, stages: Sequence[Stage], class_names: Sequence[str],
         out: Path, stem: str, family: Optional[str] = None, max_maps: int = 16) -> List[Path]:
    """Three PNGs per image: STEM_maps.png, STEM_gradcam.png, STEM_fields.png."""
    from matplotlib.patches import Rectangle

    from .training.plots import save, subplots

    out.mkdir(parents=True, exist_ok=True)
    name = class_names[ex.top]
    title = f"{stem}: {name} {ex.probs[ex.top]:.2f}"
    paths = []
    # 1. Feature maps: one row per stage, the channels with the largest mean activation first.
    cols = min(max_maps, max(s.shape[0] for s in stages))
    fig, axes = subplots(len(stages), cols + 1, figsize=(1.3 * (cols + 1), 1.5 * len(stages) + 0.6), squeeze=False)
    for row, s in zip(axes, stages):
        maps = ex.maps[s.layer]
        order = np.argsort(-maps.mean(axis=(1, 2)))[:cols]
        row[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        row[0].set_title(f"{s.layer}\n{s.shape[0]}x{s.shape[1]}x{s.shape[2]}", fontsize=6)
        for ax in row:
            ax.axis("off")
        for ax, c in zip(row[1:], order):
            ax.imshow(maps[c], cmap="viridis")
            ax.set_title(f"ch {c}", fontsize=6)
    fig.suptitle(f"{title}: feature maps of each convolution stage (strongest channels)", fontsize=9,
                 family=family)
    paths.append(save(fig, out / f"{stem}_maps.png"))
    # 2. Grad-CAM of the top class.
    fig, axes = subplots(1, 2, figsize=(6, 3.4), squeeze=False)
    axes[0][0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0][0].set_title("input", fontsize=9)
    axes[0][1].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0][1].imshow(ex.grad_cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[0][1].set_title(f"Grad-CAM: {name}", fontsize=9, family=family)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(f"{title} (last stage {stages[-1].layer})", fontsize=9, family=family)
    paths.append(save(fig, out / f"{stem}_gradcam.png"))
    # 3. Effective receptive field of each stage's centre unit, theoretical field boxed.
    fig, axes = subplots(1, len(stages), figsize=(2.8 * len(stages), 3.4), squeeze=False)
    h, w = image.shape[:2]
    for ax, s in zip(axes[0], stages):
        field = ex.fields[s.layer]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, alpha=0.6)
        ax.imshow(field, cmap="hot", alpha=0.7, vmin=0, vmax=1)
        top, left, bottom, right = s.box(s.centre_unit())
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                               edgecolor="cyan", linewidth=1.2))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_title(f"{s.layer}\ntheoretical {s.receptive_field[0]}, effective {field_extent(field):.0f}",
                     fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{title}: effective receptive field of the centre unit (box: theoretical)", fontsize=9,
                 family=family)
    paths.append(save(fig, out / f"{stem}_fields.png"))
    return paths
