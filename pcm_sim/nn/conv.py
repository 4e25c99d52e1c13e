"""Analog convolutions: kernels that live on :class:`AnalogLinear` arrays (im2col).

On a chip every output pixel is one MVM of its patch: ``C/G * kh * kw`` inputs of its group
(``G = groups``), so a convolution with ``G`` groups is ``G`` arrays, group ``g`` reading
input channels ``g*C/G .. (g+1)*C/G - 1`` and writing output channels ``g*O/G .. (g+1)*O/G - 1``
(torch's grouped layout).  Padding (``zeros``, ``reflect``, ``replicate``, ``circular``,
``"same"``, ``"valid"`` or explicit), stride and dilation follow ``torch.nn.Conv2d``; a
:class:`AnalogConv1d` is a 2-D convolution over a height of 1.  In software mode (and for
hardware-aware training) the same kernel runs as ``conv2d`` without materialising the patches.

Output size per spatial axis: ``H' = floor((H + p_lo + p_hi - d (k - 1) - 1) / s) + 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.nn.analog import AnalogLinear, Backend
from pcm_sim.profiles import DeviceProfile

__all__ = ["AnalogConv1d", "AnalogConv2d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(value: int | tuple[int, ...], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return (int(pair[0]), int(pair[1]))


class AnalogConv2d(nn.Module):
    """2-D convolution whose kernel ``(out, in/groups, kh, kw)`` lives on analog arrays.

    Group ``g``'s kernel is the :class:`AnalogLinear` ``group_layers[g]`` of shape
    ``(out/groups, in/groups * kh * kw)``; ``linear`` is group 0 (the only one when
    ``groups = 1``).  Inputs ``(..., C, H, W)``.  HWA output noise uses each patch's full scale
    (``max |x|`` over the patch: a max-pool of ``|x|``, then a max over the group's channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        bias: bool = True,
        profile: DeviceProfile | None = None,
        backend: Backend = "pcm-sim",
        binary_input: bool = False,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups: expected a divisor of in_channels {in_channels} and out_channels "
                f"{out_channels}, got {groups}"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        self.groups = groups
        self.padding_mode = padding_mode
        self.padding: tuple[int, int] | str = (
            padding if isinstance(padding, str) else _pair(padding, "padding")
        )
        self._pads = self._padding_amounts(self.padding)  # (left, right, top, bottom)
        kh, kw = self.kernel_size
        per_group_in = in_channels // groups * kh * kw
        layers = [
            AnalogLinear(
                per_group_in,
                out_channels // groups,
                bias=bias,
                profile=profile,
                backend=backend,
                binary_input=binary_input,
            )
            for _ in range(groups)
        ]
        self.linear = layers[0]
        self.more_groups = nn.ModuleList(layers[1:])

    def _padding_amounts(self, padding: tuple[int, int] | str) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` padding, as ``F.pad`` takes it."""
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("padding='same': expected stride 1 (as torch.nn.Conv2d)")
            amounts = []
            for k, d in zip(reversed(self.kernel_size), reversed(self.dilation), strict=True):
                total = d * (k - 1)
                amounts += [total // 2, total - total // 2]
            return (amounts[0], amounts[1], amounts[2], amounts[3])
        if isinstance(padding, str):
            raise ValueError(
                f"padding: expected an int, a pair, 'same' or 'valid', got {padding!r}"
            )
        ph, pw = padding
        return (pw, pw, ph, ph)

    @property
    def group_layers(self) -> list[AnalogLinear]:
        """The arrays of the groups, in channel order."""
        return [self.linear, *(g for g in self.more_groups if isinstance(g, AnalogLinear))]

    def kernel(self, software: bool = True) -> Tensor:
        """The kernel in torch's layout ``(out, in/groups, kh, kw)`` (software/HWA or stored)."""
        return self._kernel_2d(software)

    def _kernel_2d(self, software: bool = True) -> Tensor:
        weights = [
            layer.software_weight() if software else layer.weight for layer in self.group_layers
        ]
        per_group = self.in_channels // self.groups
        return torch.cat(weights).reshape(self.out_channels, per_group, *self.kernel_size)

    def kernel_bias(self) -> Tensor | None:
        """The bias ``(out,)``, or ``None``."""
        biases = [layer.bias for layer in self.group_layers]
        if biases[0] is None:
            return None
        return torch.cat([b for b in biases if b is not None])

    @torch.no_grad()
    def load_kernel(self, weight: Tensor, bias: Tensor | None) -> None:
        """Copy a torch-layout kernel ``(out, in/groups, kh, kw)`` (and bias) into the arrays."""
        expected = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        if tuple(weight.shape) != expected:
            raise ValueError(f"kernel: expected shape {expected}, got {tuple(weight.shape)}")
        per_out = self.out_channels // self.groups
        for g, layer in enumerate(self.group_layers):
            layer.weight.copy_(weight[g * per_out : (g + 1) * per_out].reshape(per_out, -1))
            if layer.bias is not None and bias is not None:
                layer.bias.copy_(bias[g * per_out : (g + 1) * per_out])

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """``(H', W')`` of an ``H x W`` input (module docstring)."""
        left, right, top, bottom = self._pads
        sizes = []
        for n, lo_hi, k, s, d in zip(
            (h, w),
            (top + bottom, left + right),
            self.kernel_size,
            self.stride,
            self.dilation,
            strict=True,
        ):
            sizes.append((n + lo_hi - d * (k - 1) - 1) // s + 1)
        if min(sizes) < 1:
            raise ValueError(f"AnalogConv2d: input {h}x{w} is smaller than the kernel's reach")
        return (sizes[0], sizes[1])

    def _padded(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The input padded as the convolution reads it, and the padding left to ``conv2d``."""
        left, right, top, bottom = self._pads
        if self.padding_mode == "zeros" and left == right and top == bottom:
            return images, (top, left)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(images, list(self._pads), mode=mode), (0, 0)

    def _software(self, images: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, out, H', W')`` with the software (or HWA) kernel."""
        x, pad = self._padded(images)
        y = F.conv2d(
            x, self._kernel_2d(), self.kernel_bias(), self.stride, pad, self.dilation, self.groups
        )
        if not self.linear.adds_hwa_output_noise:
            return y
        per_out = self.out_channels // self.groups
        per_in = self.in_channels // self.groups
        full: Tensor | None = None
        assert self.linear.profile is not None
        clip = self.linear.profile.periphery.input_policy == "clip"
        if not (self.linear.binary_input or clip):
            padded = F.pad(x.detach().abs(), [pad[1], pad[1], pad[0], pad[0]])
            full = F.max_pool2d(padded, self.kernel_size, self.stride, dilation=self.dilation)
        noisy = []
        for g, layer in enumerate(self.group_layers):
            y_g = y[:, g * per_out : (g + 1) * per_out]
            scale: Tensor | float = layer.input_full_scale(images)  # a constant here
            if full is not None:  # max |x| of every patch, over the group's channels
                group = full[:, g * per_in : (g + 1) * per_in]
                scale = group.amax(dim=1).clamp(min=1e-12).unsqueeze(-1)  # (N, H', W', 1)
            noise = layer.sample_hwa_output_noise(scale, y_g.movedim(1, -1))
            noisy.append(y_g + noise.movedim(-1, 1))
        return torch.cat(noisy, dim=1)

    def patches(self, images: Tensor) -> Tensor:
        """im2col: ``(N, C, H, W) -> (N, L, C * kh * kw)``, channel-major within a patch."""
        x, pad = self._padded(images)
        cols = F.unfold(x, self.kernel_size, self.dilation, pad, self.stride)
        return cols.transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., C, H, W) -> (..., out, H', W')``."""
        if x.dim() < 3 or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"AnalogConv2d: expected input (..., {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        lead = x.shape[:-3]
        h, w = x.shape[-2:]
        h_out, w_out = self.output_size(h, w)
        images = x.reshape(-1, self.in_channels, h, w)  # (N, C, H, W)
        layers = self.group_layers
        patches = any(layer.is_analog or layer.adds_hwa_converters for layer in layers)
        if not (patches or any(layer._forward_pre_hooks for layer in layers)):
            y = self._software(images)  # (N, out, H', W'); hooks must see the im2col patches
            return y.reshape(*lead, *y.shape[1:])
        cols = self.patches(images)  # (N, L, C*kh*kw)
        width = cols.shape[-1] // self.groups
        outputs = [layer(cols[..., g * width : (g + 1) * width]) for g, layer in enumerate(layers)]
        y = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (N, L, out)
        return y.transpose(1, 2).reshape(*lead, self.out_channels, h_out, w_out)


class AnalogConv1d(AnalogConv2d):
    """1-D convolution ``(..., C, L) -> (..., out, L')``: a 2-D one over a height of 1.

    The kernel's torch layout is ``(out, in/groups, k)`` (:meth:`kernel` returns it so).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        bias: bool = True,
        profile: DeviceProfile | None = None,
        backend: Backend = "pcm-sim",
        binary_input: bool = False,
        dilation: int = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            (1, kernel_size),
            (1, stride),
            padding if isinstance(padding, str) else (0, padding),
            bias,
            profile,
            backend,
            binary_input,
            (1, dilation),
            groups,
            padding_mode,
        )

    def kernel(self, software: bool = True) -> Tensor:
        """The kernel in torch's layout ``(out, in/groups, k)``."""
        return super().kernel(software).squeeze(-2)

    def load_kernel(self, weight: Tensor, bias: Tensor | None) -> None:
        """Copy a torch-layout kernel ``(out, in/groups, k)`` (and bias) into the arrays."""
        super().load_kernel(weight.unsqueeze(-2), bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., C, L) -> (..., out, L')``."""
        if x.dim() < 2 or x.shape[-2] != self.in_channels:
            raise ValueError(
                f"AnalogConv1d: expected input (..., {self.in_channels}, L), got {tuple(x.shape)}"
            )
        return super().forward(x.unsqueeze(-2)).squeeze(-2)
