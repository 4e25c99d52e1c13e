"""A programmed PCM crossbar: the chip state of one layer and every read and write of it.

One :class:`CrossbarArray` holds a whole weight matrix ``(in, out)`` on row tiles (see
:mod:`pcm_sim.crossbar.reads` for the read equations and the tiling).  Its value is fixed by
(weights, profile, chip seed, layer index) and the writes made to it: every random draw comes
from a named stream (:mod:`pcm_sim.crossbar.streams`):

* programming from ``(seed, layer)``; the compensation reference from ``(seed, layer, epoch)``;
* after :meth:`drift_to` ``(t)``, the slow read-noise state from ``(seed, layer, epoch, t)``,
  the ``k``-th call (forward or transposed read) from ``(seed, layer, epoch, t, k)`` and the
  compensation calibration at ``t`` from ``(seed, layer, epoch, t)``; so the ``k``-th call
  after ``drift_to(t)`` gives the same numbers whatever was asked before ``drift_to``, given the
  sizes of the calls since (they set the read clock);
* a write session (program-and-verify, a HIL transfer) from ``(seed, layer, epoch + 1)``; it
  ends write epoch ``epoch`` and starts ``epoch + 1``.

How the read noise of successive reads is related in time is ``read_noise.model``
(:mod:`pcm_sim.crossbar.read_noise`: ``clocked``, ``per_call``, ``per_read`` or ``frozen``);
``read_noise.sampling`` draws each call's normals from a fixed bank (:mod:`pcm_sim.crossbar.noise`)
or with ``randn``.  The state (conductances, drift exponents, faults, pulse counts, seed, epoch,
compensation reference, profile, the time, the read counter, the read clock and the slow
read-noise state) is exported as tensors and plain data by :meth:`state_dict` and restored by
:meth:`from_state`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from pcm_sim.crossbar import calibration, mapping, periphery, reads
from pcm_sim.crossbar.noise import NoiseBank
from pcm_sim.crossbar.read_noise import ReadNoiseClock, independent_reads, shared_read
from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile

__all__ = ["CHIP_STATE_FORMAT", "CrossbarArray"]

CHIP_STATE_FORMAT = "pcm-sim-crossbar/2"
_TENSOR_FIELDS = ("w_max", "g_target_us", "g_prog_us", "nu", "stuck", "pulses", "baseline")


def _rows_of(x: Tensor, width: int) -> Tensor:
    """``(..., width) -> (N, width)`` float32 vectors of one read, or a one-line error."""
    if x.shape[-1] != width:
        raise ValueError(f"input: expected last dim {width}, got shape {tuple(x.shape)}")
    return x.reshape(-1, width).to(torch.float32)


class CrossbarArray:
    """A weight matrix programmed onto PCM tiles.

    Args:
        weight_in_out: weights in crossbar layout ``(in, out)`` (transpose of ``nn.Linear``);
            its device is the array's device.
        profile: the device profile.
        streams: the chip seed and layer index that name every random draw.
    """

    def __init__(self, weight_in_out: Tensor, profile: DeviceProfile, streams: ChipStreams) -> None:
        if weight_in_out.dim() != 2:
            raise ValueError(f"weight: expected shape (in, out), got {tuple(weight_in_out.shape)}")
        if not torch.isfinite(weight_in_out).all():
            raise ValueError("weight: expected finite values, got NaN or inf")
        weight = weight_in_out.detach().float()
        in_features, out_features = weight.shape
        self._setup(profile, streams, in_features, out_features, weight.device)
        self.w_max = mapping.weight_scale(weight, profile, self.layout.tile_of_row)
        self.g_target_us = mapping.conductance_targets(weight, self.w_max, profile)
        self.devices = pcm.program_devices(
            self.g_target_us, profile, streams.programming(self.device)
        )
        self.pulses = torch.ones_like(self.g_target_us, dtype=torch.int32)
        self.converters = reads.draw_converters(
            profile, self.n_row_tiles, out_features, streams.converters(self.device)
        )
        self.write_epoch = 0
        self.baseline = self._reference_readout()
        self.drift_to(0.0)

    def _setup(
        self,
        profile: DeviceProfile,
        streams: ChipStreams,
        in_features: int,
        out_features: int,
        device: torch.device,
    ) -> None:
        self.profile = profile
        self.streams = streams
        self.in_features, self.out_features = in_features, out_features
        self.device = device
        self.layout = reads.TileLayout.build(in_features, profile.tile.rows, device)
        self.n_col_tiles = -(-out_features // profile.tile.cols)
        self._bank: NoiseBank | None = None
        self.t_s = 0.0
        self.read_counter = 0

    @property
    def n_row_tiles(self) -> int:
        """Row tiles (inputs split over arrays of ``tile.rows`` rows)."""
        return self.layout.n_row_tiles

    @property
    def rows(self) -> int:
        """Rows used per row tile (the largest tile)."""
        return self.layout.rows

    @property
    def n_tiles(self) -> int:
        """Physical tiles used: row tiles times column tiles."""
        return self.n_row_tiles * self.n_col_tiles

    @property
    def n_devices(self) -> int:
        """PCM devices used (both polarities, all devices per polarity)."""
        return self.g_target_us.numel()

    # --- random sources -------------------------------------------------------------------

    def _normals(self, generator: torch.Generator) -> reads.Normals:
        """N(0, 1) values of one read from ``generator`` (bank window or ``randn``)."""
        if self.profile.read_noise.sampling == "bank":
            if self._bank is None:
                device, streams = self.device, self.streams
                self._bank = NoiseBank(
                    lambda block: streams.bank(device, block), torch.float32, device
                )
            bank = self._bank
            end: list[int] = []  # where the read's previous draw ended

            def draw(shape: torch.Size) -> Tensor:
                values, stop = bank.draw(shape, generator, end[0] if end else None)
                end[:] = [stop]
                return values

            return draw
        return lambda shape: torch.randn(
            shape, generator=generator, dtype=torch.float32, device=self.device
        )

    def _next_call(self, n_reads: int) -> tuple[reads.CallNoise, reads.Normals]:
        """The read noise and the normals of the next call (``n_reads`` rows); moves the clock."""
        generator = self.streams.read(self.device, self.write_epoch, self.t_s, self.read_counter)
        normals = self._normals(generator)
        self.read_counter += 1
        return self.noise.read(n_reads, normals), normals

    # --- time and compensation ------------------------------------------------------------

    def _reference_readout(self) -> Tensor:
        """Compensation reference right after the current write epoch (t = 0)."""
        if self.profile.compensation.mode == "none":
            return torch.ones((), device=self.device)
        state = reads.read_state(self.devices, 0.0, self.profile, self.layout)
        normals = self._normals(self.streams.baseline(self.device, self.write_epoch))
        per_read = self.profile.read_noise.model == "per_read"
        noise = independent_reads(state) if per_read else shared_read(state, normals)
        return reads.compensation_readout(
            noise, state, self.layout, self.profile, normals, self.converters
        )

    def drift_to(self, t_s: float) -> None:
        """Move to ``t_s`` seconds after programming: draw the slow read-noise state, restart
        the read counter and clock, recalibrate compensation (a read of the ``in`` rows at the
        new time, which sees the slow state)."""
        if not (math.isfinite(t_s) and t_s >= 0):
            raise ValueError(f"t_s: expected a finite time >= 0 s, got {t_s}")
        self.t_s = float(t_s) + 0.0  # -0.0 and 0.0 name the same streams
        self.read_counter = 0
        self.state = reads.read_state(self.devices, self.t_s, self.profile, self.layout)
        slow = self.streams.slow_state(self.device, self.write_epoch, self.t_s)
        self.noise = ReadNoiseClock(self.state, self.layout, self.profile, self.t_s, slow)
        self.alpha = torch.ones((), device=self.device)
        if self.profile.compensation.mode != "none":
            gen = self.streams.calibration(self.device, self.write_epoch, self.t_s)
            normals = self._normals(gen)
            noise = self.noise.read(self.in_features, normals, advance=False)
            readout = reads.compensation_readout(
                noise, self.state, self.layout, self.profile, normals, self.converters
            )
            self.alpha = self.baseline / readout  # (), (out,), (R, 1, 1) or (R, 1, out)
        self.w_max_gain = reads.tile_weight_scale(self.w_max, self.layout, self.profile)
        self.gain = self.w_max_gain * self.alpha

    # --- reads ----------------------------------------------------------------------------

    def effective_weight(self) -> Tensor:
        """Mean weight the array realises now, ``(in, out)``, compensation included."""
        if self.gain.dim() == 3:  # per-tile gains
            return self.layout.untile(self.state.w * self.gain)
        return self.layout.untile(self.state.w) * self.gain

    def mvm(self, x: Tensor, binary_input: bool = False) -> Tensor:
        """Analog ``x @ W``: ``(..., in) -> (..., out)`` (no bias), one read.

        ``binary_input``: inputs are spikes in {0, 1}; they drive the rows directly, no DAC.
        """
        flat = _rows_of(x, self.in_features)  # (N, in)
        noise, normals = self._next_call(flat.shape[0])
        out = reads.forward_read(
            flat,
            noise,
            self.state,
            self.layout,
            self.profile,
            self.gain,
            normals,
            self.converters,
            binary_input,
        )
        return out.reshape(*x.shape[:-1], self.out_features)

    def mvm_transposed(self, e: Tensor, binary_input: bool = False) -> Tensor:
        """Analog ``e @ W^T``: ``(..., out) -> (..., in)``, one read (columns driven)."""
        flat = _rows_of(e, self.out_features)  # (N, out)
        noise, normals = self._next_call(flat.shape[0])
        out = reads.transposed_read(
            flat,
            noise,
            self.state,
            self.layout,
            self.profile,
            self.w_max_gain,
            self.alpha,
            normals,
            binary_input,
        )
        return out.reshape(*e.shape[:-1], self.in_features)

    def calibrate_ranges(self, inputs: Tensor | None = None, binary_input: bool = False) -> None:
        """Set every ADC's range from calibration reads (``output_range_policy: calibrated``).

        ``inputs`` ``(M, in)`` are typical layer inputs (e.g. the training data's first batch);
        without them every row is read alone with a full-scale one-hot input.  The range of each
        tile (``range_scope: tile``) or converter (``column``) is the ``range_percentile``-th
        percentile of the analog ``|y|`` (normalized units) over the calibration reads, at the
        chip's current time; a range that would be 0 keeps the profile's ``output_range``.  The
        reads draw from the chip's ``ranges`` stream; the ranges are part of the chip's state.
        """
        per = self.profile.periphery
        if per.output_range_policy != "calibrated":
            raise ValueError(
                "calibrate_ranges: the profile's output_range_policy is not calibrated"
            )
        normals = self._normals(self.streams.range_calibration(self.device, self.write_epoch))
        if inputs is None:
            eye = torch.eye(self.rows, device=self.device).expand(self.n_row_tiles, -1, -1)
            u, _, k = periphery.drive_lines(eye, per, binary_input=False)
        else:
            flat = inputs.detach().reshape(-1, self.in_features).to(torch.float32)
            tiles = self.layout.split_inputs(flat)  # (R, M, rows)
            u, _, k = periphery.drive_lines(tiles, per, binary_input)
        noise = self.noise.read(u.shape[1], normals, advance=False)  # at the current clock
        lines = reads.ir_drop_lines(self.layout, self.profile, noise.held.dtype)
        y = reads.analog_outputs(u, noise, self.state, self.profile, k, normals, lines)
        magnitude = (y / k).abs()  # (R, M, out), normalized units of the input full scale
        scope = magnitude if per.range_scope == "column" else magnitude.flatten(1).unsqueeze(-1)
        rank = max(1, math.ceil(per.range_percentile / 100.0 * scope.shape[1]))
        ranges = scope.kthvalue(rank, dim=1, keepdim=True).values  # the percentile, any size
        fallback = torch.full_like(ranges, per.output_range)
        out_range = torch.where(ranges > 0, ranges, fallback)  # (R, 1, 1) or (R, 1, out)
        conv = self.converters
        self.converters = periphery.Converters(out_range, conv.adc_gain, conv.adc_offset_lsb)
        self.baseline = self._reference_readout()  # the reference read through the new ADCs
        self.drift_to(self.t_s)

    # --- writes ---------------------------------------------------------------------------

    def write_session(
        self,
        tol_us: float,
        max_iterations: int,
        write: Tensor | None = None,
        verify_t_s: float = 0.0,
        reads_per_verify: int = 1,
        track: bool = True,
    ) -> calibration.VerifyOutcome:
        """Write ``write`` (a device mask, or none) and write-verify; start a new write epoch.

        See :func:`pcm_sim.crossbar.calibration.verify_devices`.  Afterwards the compensation
        reference is re-taken and the array returns to the time it was at (re-written devices
        are read as if they had aged like the rest: exact at ``t = 0``).
        """
        outcome = calibration.verify_devices(
            self.g_target_us,
            self.devices,
            self.pulses,
            self.profile,
            tol_us,
            max_iterations,
            self.streams.write(self.device, self.write_epoch + 1),
            verify_t_s=verify_t_s,
            write=write,
            reads_per_verify=reads_per_verify,
            track=track,
        )
        self.devices, self.pulses = outcome.devices, outcome.pulses
        self.write_epoch += 1
        self.baseline = self._reference_readout()
        self.drift_to(self.t_s)
        return outcome

    def rewrite(
        self, weight_in_out: Tensor, tol_us: float, max_iterations: int
    ) -> calibration.VerifyOutcome | None:
        """Program new weights ``(in, out)`` (clipped to ``+-w_max``, the scale is kept).

        Only devices whose target conductance changed are written (one pulse each, then
        verified with up to ``max_iterations`` re-writes); returns ``None`` if none changed.
        """
        if weight_in_out.shape != (self.in_features, self.out_features):
            raise ValueError(
                f"weight: expected shape {(self.in_features, self.out_features)}, "
                f"got {tuple(weight_in_out.shape)}"
            )
        targets = mapping.conductance_targets(
            weight_in_out.detach().float(), self.w_max, self.profile
        )
        write = targets != self.g_target_us  # (2, N, in, out)
        if not bool(write.any()):
            return None
        self.g_target_us = targets
        return self.write_session(tol_us, max_iterations, write=write, track=False)

    # --- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The chip state: tensors (on CPU) and plain data, no code."""
        values = {
            "w_max": self.w_max,
            "g_target_us": self.g_target_us,
            "g_prog_us": self.devices.g_prog_us,
            "nu": self.devices.nu,
            "stuck": self.devices.stuck,
            "pulses": self.pulses,
            "baseline": self.baseline,
        }
        conv = self.converters
        return {
            "format": CHIP_STATE_FORMAT,
            "out_range": conv.out_range.detach().cpu(),
            "adc_gain": None if conv.adc_gain is None else conv.adc_gain.detach().cpu(),
            "adc_offset_lsb": (
                None if conv.adc_offset_lsb is None else conv.adc_offset_lsb.detach().cpu()
            ),
            "chip_seed": self.streams.chip_seed,
            "layer": self.streams.layer,
            "shape": [self.in_features, self.out_features],
            "write_epoch": self.write_epoch,
            "t_s": self.t_s,
            "read_counter": self.read_counter,
            **self.noise.export(),
            "profile": self.profile.to_dict(),
            **{name: values[name].detach().cpu() for name in _TENSOR_FIELDS},
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], profile: DeviceProfile, device: torch.device
    ) -> CrossbarArray:
        """Rebuild an array from :meth:`state_dict` (already checked by the caller) on
        ``device``; it is moved to the saved time and continues from the saved read counter,
        read clock and slow read-noise state."""
        array = cls.__new__(cls)
        in_f, out_f = state["shape"]
        array._setup(profile, ChipStreams(state["chip_seed"], state["layer"]), in_f, out_f, device)
        tensors = {name: state[name].to(device) for name in _TENSOR_FIELDS}
        array.w_max = tensors["w_max"]
        array.g_target_us = tensors["g_target_us"]
        array.devices = pcm.ProgrammedDevices(tensors["g_prog_us"], tensors["nu"], tensors["stuck"])
        array.pulses = tensors["pulses"]
        array.baseline = tensors["baseline"]
        array.write_epoch = int(state["write_epoch"])
        gain, offset = state["adc_gain"], state["adc_offset_lsb"]
        array.converters = periphery.Converters(
            state["out_range"].to(device),
            None if gain is None else gain.to(device),
            None if offset is None else offset.to(device),
        )
        array.drift_to(float(state["t_s"]))
        array.read_counter = int(state["read_counter"])
        array.noise.restore(state)
        return array

    def to(self, device: torch.device) -> CrossbarArray:
        """The same chip on ``device`` (same time, read counter, clock and slow state)."""
        if torch.device(device) == self.device:
            return self
        return CrossbarArray.from_state(self.state_dict(), self.profile, torch.device(device))
