"""``convert``: any torch model onto analog arrays, layer for layer.

Every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` of the model becomes an
:class:`~pcm_sim.nn.analog.AnalogLinear`, :class:`~pcm_sim.nn.conv.AnalogConv1d` or
:class:`~pcm_sim.nn.conv.AnalogConv2d` holding the same weights (and bias, stride, padding,
dilation, groups, padding mode), so in software mode the converted model computes what the
original did, and :func:`pcm_sim.deploy`, :func:`pcm_sim.drift_to`, chip files, hardware-aware
training and hardware-in-the-loop correction work on it.  Layers are named by their qualified
names in ``model.named_modules()`` (``"features.0"``, ``"classifier"``); patterns are
``fnmatch`` patterns over those names.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping

from torch import nn

from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.nn.conv import AnalogConv1d, AnalogConv2d
from pcm_sim.profiles import DeviceProfile, load_profile

__all__ = ["ConversionError", "analog_copy", "convert"]

UNSUPPORTED = (
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.RNNBase,
    nn.Bilinear,
    nn.MultiheadAttention,
)
"""Layers with weights that have no analog counterpart yet: refused unless kept digital."""


class ConversionError(ValueError):
    """A layer cannot be converted (unsupported, or named by no layer)."""


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def analog_copy(
    layer: nn.Module, profile: DeviceProfile | None, binary_input: bool
) -> AnalogLinear | AnalogConv2d:
    """The analog twin of one ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d``, same weights."""
    if isinstance(layer, nn.Linear):
        twin = AnalogLinear(
            layer.in_features,
            layer.out_features,
            bias=layer.bias is not None,
            profile=profile,
            binary_input=binary_input,
        )
        twin.weight.data.copy_(layer.weight.data)
        if layer.bias is not None and twin.bias is not None:
            twin.bias.data.copy_(layer.bias.data)
        return twin.to(layer.weight.device)
    assert isinstance(layer, nn.Conv1d | nn.Conv2d)
    kwargs = {
        "bias": layer.bias is not None,
        "profile": profile,
        "binary_input": binary_input,
        "groups": layer.groups,
        "padding_mode": layer.padding_mode,
    }
    conv: AnalogConv2d
    if isinstance(layer, nn.Conv1d):
        padding = layer.padding if isinstance(layer.padding, str) else layer.padding[0]
        conv = AnalogConv1d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size[0],
            layer.stride[0],
            padding,
            dilation=layer.dilation[0],
            **kwargs,  # type: ignore[arg-type]
        )
    else:
        conv = AnalogConv2d(
            layer.in_channels,
            layer.out_channels,
            (layer.kernel_size[0], layer.kernel_size[1]),
            (layer.stride[0], layer.stride[1]),
            layer.padding if isinstance(layer.padding, str) else tuple(layer.padding),  # type: ignore[arg-type]
            dilation=(layer.dilation[0], layer.dilation[1]),
            **kwargs,  # type: ignore[arg-type]
        )
    conv.load_kernel(layer.weight.data, None if layer.bias is None else layer.bias.data)
    return conv.to(layer.weight.device)


def convert(
    model: nn.Module,
    profile: str | DeviceProfile | None = None,
    *,
    digital: Iterable[str] = (),
    profiles: Mapping[str, str | DeviceProfile] | None = None,
    binary_input: Iterable[str] = (),
    inplace: bool = False,
) -> nn.Module:
    """``model`` with its linear and convolution layers on analog arrays (module docstring).

    Args:
        model: any ``nn.Module``; it is copied first unless ``inplace``.
        profile: the device profile of every converted layer (name, path or object; ``None``:
            none yet, give one to :func:`pcm_sim.deploy`).
        digital: patterns of layer names kept digital (e.g. the first and last layer).
        profiles: per-layer profiles, ``{pattern: profile}``; the first matching pattern wins
            over ``profile``.
        binary_input: patterns of layers whose inputs are spikes in {0, 1} (no DAC).
        inplace: convert ``model`` itself.

    Raises:
        ConversionError: a layer with weights that has no analog counterpart and is not kept
            digital, or a pattern that names no layer.
    """
    target = model if inplace else copy.deepcopy(model)
    digital, binary = tuple(digital), tuple(binary_input)
    per_layer = {p: load_profile(v) for p, v in (profiles or {}).items()}
    default = load_profile(profile) if profile is not None else None
    names = [name for name, _ in target.named_modules() if name]
    for what, patterns in (
        ("digital", digital),
        ("profiles", tuple(per_layer)),
        ("binary_input", binary),
    ):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ConversionError(f"convert: {what} pattern {pattern!r} names no layer")
    replacements: list[tuple[nn.Module, str, nn.Module]] = []
    twins: dict[int, nn.Module] = {}  # a layer shared by two parents stays shared
    for name, module in target.named_modules():
        for child_name, child in list(module._modules.items()):  # every slot, shared or not
            full = f"{name}.{child_name}" if name else child_name
            if child is None or _matches(full, digital):
                continue
            if isinstance(child, UNSUPPORTED):
                raise ConversionError(
                    f"convert: layer {full!r} ({type(child).__name__}) has no analog counterpart; "
                    "expected Linear, Conv1d or Conv2d, or keep it digital=[...]"
                )
            if isinstance(child, nn.Linear | nn.Conv1d | nn.Conv2d):
                if id(child) not in twins:
                    chosen = next(
                        (per_layer[p] for p in per_layer if fnmatch.fnmatchcase(full, p)), default
                    )
                    twins[id(child)] = analog_copy(child, chosen, _matches(full, binary))
                replacements.append((module, child_name, twins[id(child)]))
    for parent, child_name, twin in replacements:
        setattr(parent, child_name, twin)
    return target
