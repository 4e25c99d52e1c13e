"""aihwkit backend: the same analog layer on aihwkit 1.2.0 inference tiles, from the same profile.

:func:`rpu_config_from_profile` translates a profile into an ``InferenceRPUConfig``:

* noise model: ``PCMLikeNoiseModel`` when the profile's drift and read-noise laws are that
  model's (:data:`PCM_LIKE_LAWS`, Nandakumar 2019; its programming polynomial, ``g_max``,
  ``t0``, ``t_read`` and scales carried over), or ``HermesNoiseModel(num_devices=2)`` for
  :data:`HERMES_LAWS`; other laws have no aihwkit model;
* periphery: ``inp_res = 1/(2^dac_bits - 2)``, ``out_res = 1/(2^adc_bits - 2)`` (step
  ``2 * bound * res``, the same grid as ours), ``out_bound = output_range``, ``out_noise =
  output_noise``, ``ABS_MAX`` noise management for ``input_policy: scale`` and ``CONSTANT``
  (``nm_thres = input_range``) for ``clip``; ``ITERATIVE`` bound management (``max_bm_factor``,
  ``max_bm_res``) or none; ``ir_drop`` and ``ir_drop_g_ratio``; tiles ``max_input_size = rows``,
  ``max_output_size = cols`` (0 = unlimited for ``cols = 65536``); digital bias; each tile's
  weights normalized to ``max|w| = 1`` (``weight_scaling_omega = 1``, per column for
  ``scaling: column``) so that the ADC range applies to normalized outputs, as on our crossbar
  (``scaling: tile`` is exactly this; ``layer`` equals it for single-tile layers only);
* drift compensation: ``GlobalDriftCompensation`` / ``PerColumnDriftCompensation`` / none.

Not representable in aihwkit (raise :class:`ProfileError`): conductance levels, device-to-device
gain, stuck-at faults, several devices per polarity, calibrated ADC ranges, converter gain and
offset variation.  aihwkit draws
read noise once per ``drift_analog_weights`` call, not per read.  aihwkit samples from torch's
global generator, so :class:`AihwkitTile` seeds it from the chip's named streams before each draw.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.profiles import MAX_TILE_SIZE, DeviceProfile, Law, LawPiece, ProfileError

__all__ = [
    "HERMES_LAWS",
    "PCM_LIKE_LAWS",
    "AihwkitTile",
    "apply_periphery",
    "noise_laws",
    "rpu_config_from_profile",
]

NoiseLaws = tuple[Law, Law, Law]
"""The laws of x = g / g_max that name an aihwkit noise model: drift-exponent mean ``nu_mean``,
its spread ``nu_std`` and the 1/f read-noise amplitude ``q_s``."""

PCM_LIKE_LAWS: NoiseLaws = (
    Law((LawPiece("log", (-0.0155, 0.0244), clip_min=0.049, clip_max=0.1),)),
    Law((LawPiece("log", (-0.0125, -0.0059), clip_min=0.008, clip_max=0.045),)),
    Law((LawPiece("power", (0.0088, 0.65), clip_max=0.2),)),
)
"""aihwkit 1.2.0 ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019):
``mu = clip(-0.0155 ln x + 0.0244, 0.049, 0.1)``, ``sigma_nu = clip(-0.0125 ln x - 0.0059,
0.008, 0.045)``, ``Q_s = min(0.0088 / x^0.65, 0.2)``."""

HERMES_LAWS: NoiseLaws = (
    Law(
        (
            LawPiece("log", (-0.0387, -0.0182), x_below=0.0945, clip_min=0.072, clip_max=0.13),
            LawPiece("poly", (0.0736, -0.0126, -0.0436)),
        )
    ),
    Law(
        (
            LawPiece("log", (-0.0117, -0.0057), x_below=0.3055, clip_min=0.0091, clip_max=0.04),
            LawPiece("poly", (0.0073, 0.0093, -0.0118)),
        )
    ),
    Law(
        (
            LawPiece("log", (-0.0117, -0.0069), x_below=0.16, clip_min=0.015, clip_max=0.04),
            LawPiece("poly", (0.0123, 0.0211, -0.0280, 0.0069)),
        )
    ),
)
"""aihwkit 1.2.0 ``HermesNoiseModel(num_devices=2)`` (Le Gallo et al., Nat. Electron. 2023):
piecewise log / polynomial laws of ``nu_mean``, ``nu_std`` and ``Q_s``, the log branch below
``x = 0.0945``, ``0.3055`` and ``0.16``."""


def noise_laws(profile: DeviceProfile) -> NoiseLaws:
    """The profile's ``(nu_mean, nu_std, q_s)`` laws, to compare with an aihwkit model's."""
    return profile.drift.nu_mean, profile.drift.nu_std, profile.read_noise.q_s


def _resolution(bits: int) -> float:
    return 1.0 / (2**bits - 2) if bits else -1.0


def apply_periphery(cfg: Any, profile: DeviceProfile) -> None:
    """Set an aihwkit RPU config's forward periphery and tile mapping from ``profile``."""
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

    per = profile.periphery
    cfg.forward.inp_res = _resolution(per.dac_bits)
    cfg.forward.out_res = _resolution(per.adc_bits)
    cfg.forward.out_bound = per.output_range if per.output_range else -1.0
    cfg.forward.out_noise = per.output_noise
    cfg.forward.w_noise = 0.0
    if per.bound_management == "iterative":
        cfg.forward.bound_management = BoundManagementType.ITERATIVE
        cfg.forward.max_bm_factor = int(per.bm_max_factor)
        cfg.forward.max_bm_res = per.bm_max_resolution
    else:
        cfg.forward.bound_management = BoundManagementType.NONE
    cfg.forward.ir_drop = per.ir_drop
    cfg.forward.ir_drop_g_ratio = per.ir_drop_g_ratio
    if per.input_policy == "scale":
        cfg.forward.noise_management = NoiseManagementType.ABS_MAX
    else:
        cfg.forward.noise_management = NoiseManagementType.CONSTANT
        cfg.forward.nm_thres = per.input_range
    cfg.mapping.max_input_size = profile.tile.rows
    cfg.mapping.max_output_size = 0 if profile.tile.cols >= MAX_TILE_SIZE else profile.tile.cols
    cfg.mapping.digital_bias = True
    cfg.mapping.weight_scaling_omega = 1.0  # each tile's weights normalized to max |w| = 1
    cfg.mapping.weight_scaling_columnwise = profile.weight_cell.scaling in ("column", "tile_column")


def rpu_config_from_profile(profile: DeviceProfile) -> Any:
    """The aihwkit ``InferenceRPUConfig`` equivalent to ``profile`` (see module docstring)."""
    from aihwkit.inference import HermesNoiseModel, PCMLikeNoiseModel
    from aihwkit.inference.compensation.drift import (
        GlobalDriftCompensation,
        PerColumnDriftCompensation,
    )
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    from aihwkit.simulator.configs import InferenceRPUConfig

    dev = profile.device
    for field, value in [
        ("device.levels", dev.levels),
        ("device.d2d_gain_std", dev.d2d_gain_std),
        ("device.stuck_at_gmin_fraction", dev.stuck_at_gmin_fraction),
        ("device.stuck_at_gmax_fraction", dev.stuck_at_gmax_fraction),
    ]:
        if value:
            raise ProfileError(
                f"{profile.name}: {field}={value} has no aihwkit equivalent (expected 0)"
            )
    if profile.weight_cell.devices_per_polarity != 1:
        raise ProfileError(
            f"{profile.name}: weight_cell.devices_per_polarity: aihwkit's converter needs one "
            "device per polarity"
        )
    per = profile.periphery
    for field, value in [
        ("periphery.output_range_policy", per.output_range_policy != "fixed"),
        ("periphery.adc_gain_std", per.adc_gain_std),
        ("periphery.adc_offset_lsb_std", per.adc_offset_lsb_std),
    ]:
        if value:
            raise ProfileError(f"{profile.name}: {field} has no aihwkit equivalent")
    cfg = InferenceRPUConfig()
    apply_periphery(cfg, profile)
    cfg.forward.is_perfect = profile.is_ideal

    converter = SinglePairConductanceConverter(g_max=dev.g_max_us, g_min=dev.g_min_us)
    scales = {
        "prog_noise_scale": profile.programming.scale,
        "read_noise_scale": profile.read_noise.scale,
        "drift_scale": profile.drift.scale,
    }
    laws = noise_laws(profile)
    if laws == HERMES_LAWS:
        cfg.noise_model = HermesNoiseModel(
            prog_coeff=list(profile.programming.sigma_us.pieces[0].coeffs),
            g_converter=converter,
            num_devices=2,
            g_max=dev.g_max_us,
            t_read=profile.read_noise.t_read_s,
            t_0=profile.drift.t0_s,
            **scales,
        )
    elif laws == PCM_LIKE_LAWS or profile.is_ideal:
        coeffs = profile.programming.sigma_us.pieces[0].coeffs
        cfg.noise_model = PCMLikeNoiseModel(
            prog_coeff=list(coeffs) if any(coeffs) else [0.26348, 1.9650, -1.1731],
            g_converter=converter,
            g_max=dev.g_max_us,
            t_read=profile.read_noise.t_read_s,
            t_0=profile.drift.t0_s,
            **scales,
        )
    else:
        raise ProfileError(
            f"{profile.name}: drift/read-noise laws match no aihwkit noise model "
            "(expected the Nandakumar-2019 or HERMES laws)"
        )
    # aihwkit 1.2.0 ignores an explicit prog_coeff_g_max_reference (the attribute is only set
    # when the argument is None), so set it after construction.
    cfg.noise_model.prog_coeff_g_max_reference = profile.programming.g_ref_us
    mode = profile.compensation.mode
    cfg.drift_compensation = (
        GlobalDriftCompensation()
        if mode == "global"
        else PerColumnDriftCompensation()
        if mode == "column"
        else None
    )
    return cfg


class AihwkitTile:
    """A weight matrix ``(in, out)`` programmed onto an aihwkit ``AnalogLinear`` (no bias).

    aihwkit draws from torch's global generator; before each of its draws the global generator
    is seeded from the chip's named stream (:mod:`pcm_sim.crossbar.streams`): programming, the
    drift call at ``t`` (which samples aihwkit's read noise), and the ``k``-th forward since it.
    """

    def __init__(self, weight_in_out: Tensor, profile: DeviceProfile, streams: ChipStreams) -> None:
        from aihwkit.nn import AnalogLinear as AihwkitLinear

        self.profile = profile
        self.streams = streams
        self.t_s = 0.0
        self.read_counter = 0
        in_features, out_features = weight_in_out.shape
        self.layer = AihwkitLinear(
            in_features, out_features, bias=False, rpu_config=rpu_config_from_profile(profile)
        )
        self.layer.set_weights(weight_in_out.detach().t().contiguous().cpu())
        self.layer.eval()
        self._seed_global(streams.programming(torch.device("cpu")))
        self.layer.program_analog_weights()
        self.drift_to(0.0)

    @staticmethod
    def _seed_global(generator: torch.Generator) -> None:
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))

    def drift_to(self, t_s: float) -> None:
        """Drift the programmed weights to ``t_s`` (one read-noise draw, aihwkit semantics)."""
        self.t_s, self.read_counter = float(t_s), 0
        self._seed_global(self.streams.calibration(torch.device("cpu"), 0, self.t_s))
        self.layer.drift_analog_weights(self.t_s)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        lead = x.shape[:-1]
        self._seed_global(self.streams.read(torch.device("cpu"), 0, self.t_s, self.read_counter))
        self.read_counter += 1
        out: Tensor = self.layer(x.reshape(-1, x.shape[-1]).float().cpu())
        return out.reshape(*lead, out.shape[-1]).to(x.device)
