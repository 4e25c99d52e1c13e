"""``AnalogConv2d``: a 2-D convolution whose kernel lives on an :class:`AnalogLinear`.

On a chip every output pixel is one MVM of its ``C*kh*kw`` patch (im2col), so every read goes
through the layer's crossbar.  In software mode (and for hardware-aware training) the same
kernel runs as ``conv2d`` without materialising the patches.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.nn.analog import AnalogLinear, Backend
from pcm_sim.profiles import DeviceProfile

__all__ = ["AnalogConv2d"]


class AnalogConv2d(nn.Module):
    """2-D convolution whose kernel ``(out, in, kh, kw)`` is an :class:`AnalogLinear` on im2col.

    Inputs ``(..., C, H, W)``; on a chip every output pixel is one MVM of its ``C*kh*kw`` patch.
    In software mode the same kernel (an HWA sample when training with it) runs as ``conv2d``
    without materialising the patches; HWA output noise uses each patch's full scale
    (``max |x|`` over the patch, a max-pool of ``|x|`` then a max over channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        profile: str | DeviceProfile | None = None,
        backend: Backend = "pcm-sim",
        binary_input: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.linear = AnalogLinear(
            in_channels * kernel_size * kernel_size,
            out_channels,
            bias=bias,
            profile=profile,
            backend=backend,
            binary_input=binary_input,
        )

    def _software(self, images: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, out, H', W')`` with the software (or HWA) kernel."""
        lin = self.linear
        kernel = lin.software_weight().reshape(
            self.out_channels, self.in_channels, self.kernel_size, self.kernel_size
        )
        y = F.conv2d(images, kernel, lin.bias, self.stride, self.padding)
        if not lin.adds_hwa_output_noise:
            return y
        assert lin.profile is not None
        full_scale: Tensor | float
        if lin.binary_input or lin.profile.periphery.input_policy == "clip":
            full_scale = lin.input_full_scale(images)  # a constant
        else:  # max |x| of every patch (zero padding as in im2col)
            padded = F.pad(images.detach().abs(), [self.padding] * 4)
            pooled = F.max_pool2d(padded, self.kernel_size, self.stride)  # (N, C, H', W')
            full_scale = pooled.amax(dim=1).clamp(min=1e-12).unsqueeze(-1)  # (N, H', W', 1)
        noise = lin.sample_hwa_output_noise(full_scale, y.movedim(1, -1))  # (N, H', W', out)
        return y + noise.movedim(-1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., C, H, W) -> (..., out, H', W')``."""
        if x.dim() < 3 or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"AnalogConv2d: expected input (..., {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        lead = x.shape[:-3]
        h, w = x.shape[-2:]
        images = x.reshape(-1, self.in_channels, h, w)  # (N, C, H, W)
        patches = self.linear.is_analog or self.linear.adds_hwa_converters
        if not (patches or self.linear._forward_pre_hooks):  # hooks see the im2col patches
            y = self._software(images)  # (N, out, H', W')
            return y.reshape(*lead, *y.shape[1:])
        cols = F.unfold(images, self.kernel_size, padding=self.padding, stride=self.stride)
        h_out = (h + 2 * self.padding - self.kernel_size) // self.stride + 1
        w_out = (w + 2 * self.padding - self.kernel_size) // self.stride + 1
        y = self.linear(cols.transpose(1, 2))  # (N, L, out)
        return y.transpose(1, 2).reshape(*lead, self.out_channels, h_out, w_out)
