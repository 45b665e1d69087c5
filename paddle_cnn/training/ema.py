"""An exponential moving average of a network's weights (Polyak averaging, as timm's ``ModelEmaV3``).

The average lives in a second copy of the network, so it is evaluated, checkpointed and exported
like any network. Its decay warms up as TensorFlow's ``ExponentialMovingAverage(num_updates=...)``:
``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the first epochs are not dominated by
the random initial weights. ``n`` is the run's global step, which the checkpoint holds already: a
resume continues the same average exactly.
"""
from __future__ import annotations

import paddle
from paddle import nn


def effective_decay(decay: float, updates: int) -> float:
    return min(decay, (1 + updates) / (10 + updates))


class WeightEMA:
    """``average = d * average + (1 - d) * weights`` over every float tensor of the state dict
    (batch norm's running statistics too, which timm averages as well)."""

    def __init__(self, net: nn.Layer, copy: nn.Layer, decay: float):
        self.net, self.average, self.decay = net, copy, float(decay)
        self.reset()
        copy.eval()
        # Loading a state (reset, a resume) writes into these same tensors, so the pairs are built once
        # rather than from two state_dict() walks every step.
        current = net.state_dict()
        self._pairs = [(avg, current[key]) for key, avg in copy.state_dict().items()
                       if avg.dtype in (paddle.float32, paddle.float64)]

    def reset(self) -> None:
        """The average starts at the current weights (a new run; a resume loads its saved average)."""
        self.average.set_state_dict(self.net.state_dict())

    @paddle.no_grad()
    def update(self, updates: int) -> None:
        """One step of the average; ``updates`` is how many steps it has seen before this one."""
        d = effective_decay(self.decay, updates)
        for avg, current in self._pairs:
            avg.scale_(d).add_(current.detach().scale(1 - d))
