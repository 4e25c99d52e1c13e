"""aihwkit in-situ analog training as an alternative HIL backend, for comparison.

Every :class:`~pcm_sim.nn.analog.AnalogLinear` of a trained model is replaced by an aihwkit
``AnalogLinear`` whose unit cell is aihwkit 1.2.0's PCM training model: a
``MixedPrecisionCompound`` (Nandakumar et al., Front. Neurosci. 14, 406, 2020: the rank-one
update ``x d^T`` is computed digitally into ``chi`` and transferred to the devices in pulses of
the granularity ``eps``) over a ``PCMPresetUnitCell`` (two uni-directional
``PCMPresetDevice`` s, an exponential-step PCM model with cycle-to-cycle noise and refresh).
This is aihwkit's ``MixedPrecisionPCMPreset`` with the forward periphery taken from our profile
(DAC/ADC resolution, ADC range, output noise, tile size), weights normalized to ``max |w| = 1``
device units (``weight_scaling_omega = 1``) as on our crossbar, digital bias.  The backward pass
is analog too (aihwkit's preset backward periphery), unlike our HIL, whose backward runs in
software.

Differences to :mod:`pcm_sim.training.hil` a comparison must state: aihwkit's training tiles
have no drift or 1/f read-noise model (their forward is read at ``t = 0``); the device update
model is aihwkit's pulse model, not our program-to-target model; aihwkit counts pulses only on
CUDA (``count_pulses``), so no pulse count is reported here; aihwkit's simulator draws from its
own random generator, seeded through torch's global seed (set from ``seed``) -- runs are
repeatable on one machine but not parity-tested against our generator streams.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.backends.aihwkit import apply_periphery
from pcm_sim.nn.analog import AnalogLinear, analog_layers
from pcm_sim.profiles import DeviceProfile
from pcm_sim.training.hil import HILTask

__all__ = [
    "AihwkitTrainableLinear",
    "aihwkit_finetune",
    "mixed_precision_pcm_config",
    "to_aihwkit_training",
]


def mixed_precision_pcm_config(profile: DeviceProfile, granularity: float = 0.0) -> Any:
    """aihwkit's ``MixedPrecisionPCMPreset`` with the profile's forward periphery and tiles.

    ``granularity``: transfer threshold ``eps`` in device weight units (``0``: aihwkit's
    default, the device's ``dw_min``).
    """
    from aihwkit.simulator.presets.configs import MixedPrecisionPCMPreset

    cfg = MixedPrecisionPCMPreset()
    cfg.device.granularity = granularity
    apply_periphery(cfg, profile)
    return cfg


class AihwkitTrainableLinear(nn.Module):
    """An aihwkit ``AnalogLinear`` with in-situ PCM training in place of an ``AnalogLinear``.

    Inputs ``(..., in)`` are flattened to ``(N, in)`` for aihwkit and reshaped back.
    """

    def __init__(self, source: AnalogLinear, rpu_config: Any) -> None:
        super().__init__()
        from aihwkit.nn import AnalogLinear as AihwkitLinear

        self.in_features, self.out_features = source.in_features, source.out_features
        bias = source.bias is not None
        self.analog = AihwkitLinear(
            self.in_features, self.out_features, bias=bias, rpu_config=rpu_config
        )
        b = source.bias.detach().clone() if source.bias is not None else None
        self.analog.set_weights(source.weight.detach().clone(), b)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        lead = x.shape[:-1]
        out: Tensor = self.analog(x.reshape(-1, self.in_features))
        return out.reshape(*lead, self.out_features)

    def weight_out_in(self) -> Tensor:
        """The weights the devices hold now, ``(out, in)`` (aihwkit's ``get_weights``)."""
        weight: Tensor = self.analog.get_weights()[0]
        return weight


def to_aihwkit_training(
    model: nn.Module, profile: DeviceProfile, seed: int = 0, granularity: float = 0.0
) -> nn.Module:
    """A copy of ``model`` whose analog layers are aihwkit PCM mixed-precision training tiles."""
    chip = copy.deepcopy(model)
    if not analog_layers(chip):
        raise ValueError("to_aihwkit_training: the model has no AnalogLinear layers")
    torch.manual_seed(seed)  # aihwkit draws device-to-device variation from the global seed
    cfg = mixed_precision_pcm_config(profile, granularity)
    for parent in list(chip.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, AnalogLinear):
                setattr(parent, name, AihwkitTrainableLinear(child, copy.deepcopy(cfg)))
    return chip


def aihwkit_finetune(
    model: nn.Module,
    task: HILTask,
    steps: int,
    lr: float,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """In-situ fine-tuning of a :func:`to_aihwkit_training` model with aihwkit's ``AnalogSGD``.

    Batches come from ``task`` with a generator seeded by ``seed``; digital parameters
    (thresholds, biases) take plain SGD steps.  Returns per-step losses and the wall time.
    """
    from aihwkit.optim import AnalogSGD

    optimizer = AnalogSGD(model.parameters(), lr=lr)
    optimizer.regroup_param_groups(model)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        loss = task.loss(model, task.batch(generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if log and (step % 50 == 0 or step == steps):
            recent = losses[-50:]
            log(f"aihwkit step {step}/{steps} loss {sum(recent) / len(recent):.4f}")
    model.eval()
    return {"steps": steps, "lr": lr, "losses": losses, "seconds": time.perf_counter() - start}
