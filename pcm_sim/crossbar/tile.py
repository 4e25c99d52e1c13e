"""A programmed PCM crossbar: tiles, drift, fresh read noise, periphery and compensation.

One :class:`CrossbarArray` holds a whole weight matrix, split into ``n = ceil(in / rows)`` row
tiles of near-equal size (sizes differ by at most one, as aihwkit splits; shorter tiles are
zero-padded so all tiles run in one batched matmul).  Column tiles share rows and need no
separate treatment: every column has its own ADC.  For a normalized input ``u`` (after DAC)
and tile ``k``:

    ``y_k = ADC( u_k @ (W_k + sigma_k * Z) + out_noise * Z' )``        (normalized units)
    ``y   = alpha * w_max * sum_k s_k * y_k + b``

where ``W_k`` is the tile's normalized drifted weight at time ``t`` (see ``mapping``),
``sigma_k`` its 1/f read-noise std (devices of a cell add in quadrature), ``s_k`` the input
scale of that tile, ``alpha`` the drift compensation factor and ``b`` the digital bias.

Read noise is fresh on every call.  ``read_noise.per_sample: false`` draws one noisy read
``Z ~ N(0, 1)^(in x out)`` per call, shared by the samples of that call (one array read reused by
a batch, the cheap mode the benchmark uses); ``per_sample: true`` gives every sample an
independent read, using the exact per-output law ``sqrt((u^2) @ sigma^2) * N(0, 1)`` (one extra
matmul).  In both modes the marginal distribution of every output equals that of a fresh
per-device Gaussian read; noise is not clamped at zero conductance per read.

Global drift compensation follows aihwkit's semantics: after programming (t = 0) and at time t the
array is read, through the full analog path, with the same known inputs; ``alpha = mean|y_0| /
mean|y_t|`` (``global``) or the same ratio per output column (``column``).  As in aihwkit the
known inputs are the one-hot vectors ``eye(in)``: dense calibration vectors would saturate the
ADC, and the output noise dithers the ADC rounding of small one-hot reads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pcm_sim.crossbar import mapping, periphery
from pcm_sim.crossbar.noise import NoiseBank
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile

__all__ = ["CrossbarArray"]

MIN_READOUT = 1e-4


class CrossbarArray:
    """A weight matrix programmed onto PCM tiles.

    Args:
        weight_in_out: weights in crossbar layout ``(in, out)`` (transpose of ``nn.Linear``).
        profile: the device profile.
        generator: drives programming and every later read; its device sets the array's device.
    """

    def __init__(
        self, weight_in_out: Tensor, profile: DeviceProfile, generator: torch.Generator
    ) -> None:
        if weight_in_out.dim() != 2:
            raise ValueError(f"weight: expected shape (in, out), got {tuple(weight_in_out.shape)}")
        if not torch.isfinite(weight_in_out).all():
            raise ValueError("weight: expected finite values, got NaN or inf")
        self.profile = profile
        self.generator = generator
        self.noise_bank = NoiseBank(generator, torch.float32, weight_in_out.device)
        self.in_features, self.out_features = weight_in_out.shape
        self.n_row_tiles = math.ceil(self.in_features / profile.tile.rows)
        base, extra = divmod(self.in_features, self.n_row_tiles)
        self.tile_sizes = [base + (k < extra) for k in range(self.n_row_tiles)]
        self.rows = self.tile_sizes[0]
        # padded layout: slot (k, r) holds input row ``index[k*rows + r]``; ``in`` = zero row
        index = torch.full((self.n_row_tiles, self.rows), self.in_features, dtype=torch.long)
        start = 0
        for k, size in enumerate(self.tile_sizes):
            index[k, :size] = torch.arange(start, start + size)
            start += size
        self.row_index = index.reshape(-1).to(weight_in_out.device)
        self.padded = extra != 0
        self.n_col_tiles = math.ceil(self.out_features / profile.tile.cols)
        weight = weight_in_out.detach().float()
        self.w_max = mapping.weight_scale(weight, profile)
        self.g_target_us = mapping.conductance_targets(weight, self.w_max, profile)
        self.devices = pcm.program_devices(self.g_target_us, profile, generator)
        self.pulses = torch.ones_like(self.g_target_us, dtype=torch.int32)
        self.t_s = 0.0
        self.alpha = torch.ones((), dtype=weight.dtype, device=weight.device)
        self.baseline = self.alpha
        self._calibrate_baseline()

    @property
    def n_tiles(self) -> int:
        """Physical tiles used: row tiles times column tiles."""
        return self.n_row_tiles * self.n_col_tiles

    @property
    def n_devices(self) -> int:
        """PCM devices used (both polarities, all devices per polarity)."""
        return self.g_target_us.numel()

    def reprogram(self, devices: pcm.ProgrammedDevices, pulses: Tensor) -> None:
        """Replace device states (e.g. after program-and-verify); resets the time to 0."""
        self.devices = devices
        self.pulses = pulses
        self._calibrate_baseline()

    def _calibrate_baseline(self) -> None:
        """Reference readout right after programming (t = 0), then the state at t = 0."""
        self.t_s = 0.0
        self.alpha = torch.ones_like(self.alpha)
        self._refresh_read_state()
        if self.profile.compensation.mode != "none":
            self.baseline = self._calibration_readout()
        self.drift_to(0.0)

    def drift_to(self, t_s: float) -> None:
        """Move the array to ``t_s`` seconds after programming and recalibrate compensation."""
        self.t_s = float(t_s)
        self._refresh_read_state()
        self.alpha = torch.ones_like(self.alpha)
        if self.profile.compensation.mode != "none":
            self.alpha = self.baseline / self._calibration_readout()

    def _refresh_read_state(self) -> None:
        """Normalized mean weights and read-noise std at the current time, tiled for the MVM."""
        g_prog, nu = self.devices.g_prog_us, self.devices.nu
        g_drift = pcm.drifted_conductance(g_prog, nu, self.t_s, self.profile)
        sigma = pcm.read_noise_std(g_prog, g_drift, self.t_s, self.profile)
        span = self.profile.device.g_max_us - self.profile.device.g_min_us
        n = g_prog.shape[1]
        w_norm = mapping.normalized_weights(g_drift, self.profile)  # (in, out)
        var = (sigma.square().sum(dim=(0, 1))) / (n * span) ** 2  # (in, out)
        self.has_read_noise = bool(self.profile.read_noise.scale > 0)
        self.w_tiles = self._tile(w_norm)  # (tiles, rows, out)
        self.sigma_tiles = self._tile(var.sqrt())  # (tiles, rows, out)
        self.var_tiles = self._tile(var)  # (tiles, rows, out)

    def _tile(self, matrix: Tensor) -> Tensor:
        """``(in, out) -> (tiles, rows, out)`` in the padded tile layout."""
        if self.padded:
            matrix = torch.nn.functional.pad(matrix, (0, 0, 0, 1))[self.row_index]
        return matrix.reshape(self.n_row_tiles, self.rows, self.out_features).contiguous()

    def effective_weight(self) -> Tensor:
        """Mean weight the array realises now, ``(in, out)``, compensation included."""
        w = self.w_tiles.reshape(-1, self.out_features)
        if self.padded:
            w = w[self.row_index < self.in_features]
        return w * self.w_max * self.alpha

    def _calibration_readout(self) -> Tensor:
        eye = torch.eye(self.in_features, dtype=self.w_tiles.dtype, device=self.w_tiles.device)
        out = self.mvm(eye, apply_compensation=False).abs()  # (in, out): one-hot reads
        if self.profile.compensation.mode == "column":
            return out.mean(dim=0).clamp(min=MIN_READOUT)
        return out.mean().clamp(min=MIN_READOUT)

    def _normals(self, shape: torch.Size | tuple[int, ...]) -> Tensor:
        """Fresh N(0, 1) values for one read (bank or exact ``randn``, per the profile)."""
        if self.profile.read_noise.sampling == "bank":
            return self.noise_bank.draw(tuple(shape))
        w = self.w_tiles
        return torch.randn(shape, generator=self.generator, dtype=w.dtype, device=w.device)

    def mvm(self, x: Tensor, binary_input: bool = False, apply_compensation: bool = True) -> Tensor:
        """Analog matrix-vector product of ``x`` ``(..., in)`` -> ``(..., out)`` (no bias).

        ``binary_input``: inputs are spikes in {0, 1}; they drive the rows directly, no DAC.
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"input: expected last dim {self.in_features}, got shape {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features).to(self.w_tiles.dtype)  # (N, in)
        n_samples = flat.shape[0]
        if self.padded:
            flat = torch.nn.functional.pad(flat, (0, 1))[:, self.row_index]  # (N, tiles*rows)
        u = flat.reshape(n_samples, self.n_row_tiles, self.rows).transpose(0, 1)  # (T, N, rows)
        per = self.profile.periphery
        needs_periphery = bool(per.dac_bits or per.output_range or per.output_noise)
        # Integer-domain periphery: the rows are driven with u, x ~ u * full_scale / k, where
        # k = DAC levels (or 1); normalized outputs are y_u / k (see periphery.dac / adc).
        full_scale: Tensor | float = 1.0
        k = 1.0
        if needs_periphery and not binary_input:
            levels = periphery.converter_levels(per.dac_bits) if per.dac_bits else 0
            k = float(levels) if levels else 1.0
            if per.input_policy == "scale":
                full_scale = periphery.input_scale(u, per)  # (T, N, 1): max |x| per row tile
                u = u * (k / full_scale)  # |u| <= k: no clipping needed
            else:
                full_scale = per.input_range
                u = (u * (k / full_scale)).clamp_(-k, k)
            if levels:
                u = u.round_()
        w = self.w_tiles
        per_sample = self.profile.read_noise.per_sample
        if self.has_read_noise and not per_sample:
            z = self._normals(w.shape)
            w = torch.addcmul(w, self.sigma_tiles, z)  # (T, rows, out): one fresh read
        y = torch.matmul(u, w)  # (T, N, out), in units of 1/k of full scale
        if self.has_read_noise and per_sample:
            std = torch.matmul(u.square(), self.var_tiles).sqrt_()  # (T, N, out)
            y.addcmul_(std, self._normals(y.shape))
        if per.output_noise:
            y.add_(self._normals(y.shape), alpha=per.output_noise * k)
        unit = 1.0 / k  # normalized output per unit of y
        if per.output_range:
            if per.adc_bits:
                adc_levels = periphery.converter_levels(per.adc_bits)
                step = per.output_range / adc_levels
                y.mul_(1.0 / (step * k)).round_().clamp_(-adc_levels, adc_levels)
                unit = step
            else:
                y.mul_(1.0 / k).clamp_(-per.output_range, per.output_range)
                unit = 1.0
        gain = self.w_max * self.alpha if apply_compensation else self.w_max  # () or (out,)
        if gain.dim() == 0:  # fold the scalar gain into the small per-sample factor
            y = y.mul_(full_scale * (unit * gain)) if needs_periphery else y.mul_(gain)
            out = y.sum(dim=0) if self.n_row_tiles > 1 else y[0]  # (N, out)
        else:
            y = y.mul_(full_scale * unit) if needs_periphery else y
            out = (y.sum(dim=0) if self.n_row_tiles > 1 else y[0]) * gain  # (N, out)
        return out.reshape(*lead, self.out_features)
