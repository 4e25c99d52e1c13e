"""Measured conductances: the CSV format, its checks, and simulated measurements of a profile.

One row per read, with a header naming the columns (any order)::

    device,g_target_us,t_s,g_us,read,temperature_k
    d0001,12.5,60,11.93,0,300
    d0001,12.5,60,12.07,1,300

``device``
    any non-empty text naming one device (a number, ``r12c40``, ...).
``g_target_us``
    the conductance the device was programmed to (µS, > 0); one value per device.
``t_s``
    seconds since the end of programming (>= 0, finite).
``g_us``
    the conductance read (µS, >= 0, finite).
``read`` (optional)
    repeat index of the reads of one device at one ``t_s`` (an integer >= 0, each
    (device, t_s, read) once).  Without it, rows of one device at the same ``t_s`` are repeats.
``temperature_k`` (optional)
    ambient temperature (K, > 0).  A profile has no temperature dependence, so one file holds
    one temperature (a spread of at most :data:`TEMPERATURE_SPREAD_K`).

Reading never evaluates anything in the file: it is UTF-8 text split by :mod:`csv`, and each
number is parsed by ``float``.  Every refusal is a :class:`MeasurementError` (a ``ValueError``)
whose one-line message names the file, the line or column, and what was expected.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pcm_sim.files import decode_text, read_bytes
from pcm_sim.physics.pcm import ProgrammedDevices, conductance_at, program_devices
from pcm_sim.profiles import DeviceProfile

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TEMPERATURE_SPREAD_K",
    "MeasurementError",
    "Measurements",
    "read_measurements",
    "simulate_like",
    "simulate_measurements",
    "write_measurements_csv",
]

REQUIRED_COLUMNS = ("device", "g_target_us", "t_s", "g_us")
OPTIONAL_COLUMNS = ("read", "temperature_k")
TEMPERATURE_SPREAD_K = 1.0
"""Largest max - min of ``temperature_k`` in one file (K): a thermostat's regulation band."""
_CHUNK_ROWS = 200_000


class MeasurementError(ValueError):
    """Measurements that cannot be fitted; the message is one line naming where and what."""


@dataclass(frozen=True)
class Measurements:
    """Reads of many devices at several times (every array row-aligned unless noted).

    ``device``: (rows,) index into ``device_names``; ``g_target_us``: (devices,) target of each
    device (µS); ``t_s``: (rows,) seconds since programming; ``g_us``: (rows,) read conductance
    (µS); ``read``: (rows,) repeat index or ``None``; ``line``: (rows,) line of each row in the
    source file (1 = header), or ``None`` for simulated data.  ``source`` names the file,
    ``sha256`` is the hash of its bytes (for simulated data, of the arrays' bytes).
    """

    device: np.ndarray
    device_names: tuple[str, ...]
    g_target_us: np.ndarray
    t_s: np.ndarray
    g_us: np.ndarray
    read: np.ndarray | None
    temperature_k: float | None
    line: np.ndarray | None
    source: str
    sha256: str

    @property
    def rows(self) -> int:
        """Number of reads."""
        return int(self.g_us.shape[0])

    @property
    def devices(self) -> int:
        """Number of devices."""
        return len(self.device_names)

    def where(self, row: int) -> str:
        """``file line N`` (or ``row N`` for simulated data) of a row index, for messages."""
        if self.line is None:
            return f"{self.source} row {row + 1}"
        return f"{self.source} line {int(self.line[row])}"

    def device_label(self, device: int) -> str:
        """``device 'd17' (file line N)``: a device and the line of its first row."""
        first = int(np.flatnonzero(self.device == device)[0])
        return f"device {self.device_names[device]!r} ({self.where(first)})"


def _fail(message: str) -> MeasurementError:
    return MeasurementError(" ".join(message.split()))


def _header(row: list[str], source: str) -> dict[str, int]:
    names = [name.strip() for name in row]
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    expected = f"expected columns {', '.join(REQUIRED_COLUMNS)} and optionally read, temperature_k"
    for name in names:
        if name not in allowed:
            raise _fail(f"{source} line 1: unknown column {name!r} ({expected})")
        if names.count(name) > 1:
            raise _fail(f"{source} line 1: column {name!r} appears twice")
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise _fail(f"{source}: missing column {name!r} ({expected})")
    return {name: i for i, name in enumerate(names)}


def _numbers(texts: list[str], column: str, lines: list[int], source: str) -> np.ndarray:
    """Parse one chunk of a numeric column; the first bad cell is named by its line."""
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        values = np.full(len(texts), np.nan)
        for i, text in enumerate(texts):
            try:
                float(text)
            except ValueError:
                raise _fail(
                    f"{source} line {lines[i]}: {column} {text.strip()!r} is not a number"
                ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(
            f"{source} line {lines[i]}: {column} is {texts[i].strip()}, expected a finite number"
        )
    return values


_RULES = {
    "g_target_us": (lambda v: v > 0, "a target conductance > 0 µS"),
    "t_s": (lambda v: v >= 0, "a time >= 0 s after the end of programming"),
    "g_us": (lambda v: v >= 0, "a conductance >= 0 µS"),
    "read": (lambda v: (v >= 0) & (v == np.round(v)), "a repeat index: an integer >= 0"),
    "temperature_k": (lambda v: v > 0, "a temperature > 0 K"),
}


def _parse(text: str, source: str) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """Columns as arrays, device names in order of appearance, and the line of every row.

    Rows are read in chunks of :data:`_CHUNK_ROWS` and turned into columns by ``zip`` (no
    Python work per cell); every row must sit on one line of the file.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    while header is not None and not any(cell.strip() for cell in header):
        header = next(reader, None)
    if header is None:
        raise _fail(
            f"{source}: empty file (expected a header with columns {', '.join(REQUIRED_COLUMNS)})"
        )
    columns = _header(header, source)
    width = len(columns)
    names: dict[str, int] = {}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    line_parts: list[np.ndarray] = []
    while True:
        first_line = reader.line_num + 1
        chunk = list(itertools.islice(reader, _CHUNK_ROWS))
        if not chunk:
            break
        if reader.line_num - first_line + 1 != len(chunk):
            raise _fail(f"{source}: a quoted field spans lines after line {first_line} "
                        "(expected one row per line)")  # fmt: skip
        keep = [i for i, row in enumerate(chunk) if row]  # csv gives [] for a blank line
        lines = [first_line + i for i in keep]
        widths = [len(chunk[i]) for i in keep]
        if any(w != width for w in widths):
            j = next(j for j, w in enumerate(widths) if w != width)
            raise _fail(
                f"{source} line {lines[j]}: {widths[j]} fields, expected {width} "
                "(one per column of the header)"
            )
        cols = list(zip(*(chunk[i] for i in keep), strict=True)) if keep else []
        for name, i in columns.items():
            texts = list(cols[i]) if cols else []
            if name == "device":
                stripped = [d.strip() for d in texts]
                if "" in stripped:
                    raise _fail(f"{source} line {lines[stripped.index('')]}: empty device name")
                parts[name].append(np.array([names.setdefault(d, len(names)) for d in stripped]))
                continue
            values = _numbers(texts, name, lines, source)
            ok, expected = _RULES[name]
            bad = ~ok(values)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise _fail(
                    f"{source} line {lines[k]}: {name} is {texts[k].strip()}, expected {expected}"
                )
            parts[name].append(values)
        line_parts.append(np.array(lines, dtype=np.int64))
    if not sum(len(p) for p in line_parts):
        raise _fail(f"{source}: no data rows after the header")
    arrays = {name: np.concatenate(p) for name, p in parts.items()}
    arrays["device"] = arrays["device"].astype(np.int64)
    return arrays, list(names), np.concatenate(line_parts)


def _check_duplicates(
    device: np.ndarray, t_s: np.ndarray, read: np.ndarray, source: str, lines: np.ndarray
) -> None:
    order = np.lexsort((read, t_s, device))
    same = (np.diff(device[order]) == 0) & (np.diff(t_s[order]) == 0) & (np.diff(read[order]) == 0)
    if same.any():
        i = int(order[int(np.flatnonzero(same)[0]) + 1])
        raise _fail(
            f"{source} line {lines[i]}: a second row with the same device, t_s and read "
            "(each repeat of a read needs its own read index)"
        )


def read_measurements(path: str | Path) -> Measurements:
    """Read and check a measurement CSV (see the module docstring for the format)."""
    source = str(path)
    data = read_bytes(path, _fail)
    text = decode_text(data, path, _fail, "expected a CSV file", "utf-8-sig")
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of row lists, none in a cycle: the collector would rescan them
    try:
        arrays, names, lines = _parse(text, source)
    except csv.Error as exc:
        raise _fail(f"{source}: malformed CSV ({exc})") from None
    finally:
        if gc_was_on:
            gc.enable()
    device = arrays["device"]
    g_target_rows = arrays["g_target_us"]
    first = np.full(len(names), -1, dtype=np.int64)
    first[device[::-1]] = np.arange(len(device))[::-1]  # first row of each device
    g_target = g_target_rows[first]
    differs = g_target_rows != g_target[device]
    if differs.any():
        i = int(np.flatnonzero(differs)[0])
        raise _fail(
            f"{source} line {lines[i]}: device {names[device[i]]!r} has g_target_us "
            f"{g_target_rows[i]:g}, but {g_target[device[i]]:g} at line {lines[first[device[i]]]} "
            "(expected one target per device)"
        )
    read = arrays.get("read")
    if read is not None:
        _check_duplicates(device, arrays["t_s"], read, source, lines)
    temperature = None
    if "temperature_k" in arrays:
        temps = arrays["temperature_k"]
        if float(temps.max() - temps.min()) > TEMPERATURE_SPREAD_K:
            raise _fail(
                f"{source}: temperature_k spans {temps.min():g}..{temps.max():g} K; a profile has "
                f"no temperature dependence, so fit each temperature (within "
                f"{TEMPERATURE_SPREAD_K:g} K) on its own"
            )
        temperature = float(temps.mean())
    return Measurements(
        device=device,
        device_names=tuple(names),
        g_target_us=g_target,
        t_s=arrays["t_s"],
        g_us=arrays["g_us"],
        read=None if read is None else read.astype(np.int64),
        temperature_k=temperature,
        line=lines,
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _csv_text(m: Measurements, digits: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = list(REQUIRED_COLUMNS) + (["read"] if m.read is not None else [])
    header += ["temperature_k"] if m.temperature_k is not None else []
    writer.writerow(header)
    fmt = f"{{:.{digits}g}}"
    names = np.array(m.device_names, dtype=object)[m.device]
    targets = m.g_target_us[m.device]
    for i in range(m.rows):
        row = [names[i], fmt.format(targets[i]), fmt.format(m.t_s[i]), fmt.format(m.g_us[i])]
        if m.read is not None:
            row.append(str(int(m.read[i])))
        if m.temperature_k is not None:
            row.append(f"{m.temperature_k:g}")
        writer.writerow(row)
    return buffer.getvalue()


def write_measurements_csv(m: Measurements, path: str | Path, digits: int = 7) -> Path:
    """Write measurements in the CSV format above (numbers to ``digits`` significant digits)."""
    from pcm_sim.studies.outputs import write_text_atomic

    return write_text_atomic(path, _csv_text(m, digits))


def simulate_like(m: Measurements, profile: DeviceProfile, seed: int) -> np.ndarray:
    """Simulated reads (µS) of the same devices, targets, times and repeats as ``m``.

    Devices are programmed once (:func:`pcm_sim.physics.pcm.program_devices`, float64); every
    row is one read of its device at its ``t_s`` (:func:`conductance_at`, a fresh read-noise
    draw per row).  One call per distinct time, never per device.  Returns (rows,) float64.
    """
    gen = torch.Generator().manual_seed(seed)
    devices = program_devices(torch.from_numpy(m.g_target_us.astype(np.float64)), profile, gen)
    out = np.empty(m.rows)
    times, inverse = np.unique(m.t_s, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(times) + 1))
    for k, t in enumerate(times):
        rows = order[bounds[k] : bounds[k + 1]]
        idx = torch.from_numpy(m.device[rows])
        subset = ProgrammedDevices(
            g_prog_us=devices.g_prog_us[idx], nu=devices.nu[idx], stuck=devices.stuck[idx]
        )
        out[rows] = conductance_at(subset, float(t), profile, gen).numpy()
    return out


def simulate_measurements(
    profile: DeviceProfile,
    g_target_us: np.ndarray,
    times_s: tuple[float, ...] | list[float],
    reads: int,
    seed: int,
    temperature_k: float | None = None,
) -> Measurements:
    """Measurements a chip with ``profile`` would give: every device read ``reads`` times at
    each of ``times_s``.  ``g_target_us``: (devices,) targets in µS.  Rows are ordered by
    device, then time, then repeat; device names are ``d0``, ``d1``, ...
    """
    targets = np.asarray(g_target_us, dtype=np.float64)
    n_dev, n_t = len(targets), len(times_s)
    device = np.repeat(np.arange(n_dev, dtype=np.int64), n_t * reads)
    t_s = np.tile(np.repeat(np.asarray(times_s, dtype=np.float64), reads), n_dev)
    read = np.tile(np.arange(reads, dtype=np.int64), n_dev * n_t)
    skeleton = Measurements(
        device=device,
        device_names=tuple(f"d{i}" for i in range(n_dev)),
        g_target_us=targets,
        t_s=t_s,
        g_us=np.zeros(len(device)),
        read=read,
        temperature_k=temperature_k,
        line=None,
        source=f"simulated from {profile.name} (seed {seed})",
        sha256="",
    )
    g = simulate_like(skeleton, profile, seed)
    digest = hashlib.sha256()
    for array in (device, targets, t_s, g, read):
        digest.update(array.tobytes())
    return Measurements(**{**skeleton.__dict__, "g_us": g, "sha256": digest.hexdigest()})
