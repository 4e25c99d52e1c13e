"""Bach chorales as binary piano rolls, from the corpus bundled with music21.

Pieces
    Every MusicXML file (``.mxl``/``.xml``) that music21's core corpus files under
    ``bach/`` and whose name starts with a BWV number of at most 438 (the range of the
    chorales: cantata and passion/oratorio chorale movements plus the four-part chorales
    BWV 250-438). This excludes the one non-chorale Bach work that music21 ships
    (BWV 846, a keyboard prelude), the Humdrum ``.krn`` duplicates and the ``.rntxt``
    Roman-numeral analyses. Variant versions shipped as separate files (e.g.
    ``bwv18.5-lz.mxl`` and ``bwv18.5-w.mxl``) are kept as separate pieces. A piece that
    music21 fails to parse, or that yields no sounding frame, is skipped and counted.

Piano roll
    88 columns for the piano keys, column ``k`` is MIDI pitch ``21 + k`` (A0 .. C8); all
    parts of the score are merged at sounding pitch. Time is quantised to one frame per
    eighth note (``quarterLength`` 0.5, :data:`FRAME_QUARTER_LENGTH`): frame ``t`` starts
    at ``quarterLength`` ``0.5 * t`` counted from the start of the score (a pickup measure
    starts at 0). A key is on in frame ``t`` iff some note (or chord member) of that pitch
    sounds at the frame's start, i.e. ``offset <= 0.5 * t < offset + quarterLength``. Tied
    notes therefore give a continuous run; notes shorter than an eighth that do not
    straddle a frame start (e.g. sixteenth passing notes off the beat) and grace notes do
    not appear. Repeats are not expanded. A roll has ``ceil(2 * highestTime)`` frames
    (the score's total length, trailing rests included).

Split
    By piece, deterministic and machine independent: the key of a piece is its corpus
    path relative to the corpus root (e.g. ``"bach/bwv250.mxl"``); the first 8 bytes of its
    SHA-256 digest, taken as a big-endian integer modulo 100, put it in ``train``
    (0..79), ``valid`` (80..89) or ``test`` (90..99). Pieces are sorted by that key, which
    fixes their order within each split; ``max_pieces`` keeps the first pieces in that order.

Cache
    Building parses every file with music21 (minutes). The result is cached as
    ``<cache_dir>/chorales_v1.npz`` (``chorales_v1_max<N>.npz`` when ``max_pieces=N``, so a
    small build never replaces the full one). ``cache_dir`` defaults to
    ``$PCM_SIM_CACHE_DIR`` if set, else ``~/.cache/pcm_sim``. Loading from the cache does
    not import music21.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CACHE_DIR_ENV_VAR",
    "FRAME_QUARTER_LENGTH",
    "LOWEST_MIDI",
    "NUM_KEYS",
    "SPLITS",
    "SequenceBatch",
    "assign_split",
    "batch_sequences",
    "cache_path",
    "chorale_corpus_paths",
    "events_to_roll",
    "frame_nll",
    "load_chorales",
    "parse_chorale",
]

logger = logging.getLogger(__name__)

FRAME_QUARTER_LENGTH = 0.5
"""Duration of one frame in quarter notes (one eighth note)."""
LOWEST_MIDI = 21
"""MIDI pitch of column 0 (A0)."""
NUM_KEYS = 88
"""Number of piano-roll columns (MIDI 21..108)."""
SPLITS = ("train", "valid", "test")
CACHE_DIR_ENV_VAR = "PCM_SIM_CACHE_DIR"
CACHE_VERSION = 1
_MAX_CHORALE_BWV = 438
_BWV_RE = re.compile(r"^bwv(\d+)", re.IGNORECASE)
_EPS = 1e-9


# --------------------------------------------------------------------------- corpus / split


def assign_split(key: str) -> str:
    """Split (``"train"``, ``"valid"`` or ``"test"``) of the piece with corpus key ``key``.

    Uses a stable hash (SHA-256 of the UTF-8 key) so the assignment is the same on every
    machine and Python run: bucket ``< 80`` -> train, ``< 90`` -> valid, else test.
    """
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    if bucket < 80:
        return "train"
    if bucket < 90:
        return "valid"
    return "test"


def chorale_corpus_paths() -> list[tuple[str, Path]]:
    """All chorale files in music21's core corpus, as ``(key, path)`` sorted by ``key``.

    ``key`` is the path relative to the corpus root, e.g. ``"bach/bwv250.mxl"``; see the
    module docstring for which files count as chorales. Imports music21.
    """
    from music21 import corpus

    found: dict[str, Path] = {}
    for raw in corpus.getComposer("bach", fileExtensions=("xml",)):
        path = Path(raw)
        if path.parent.name.lower() != "bach" or path.suffix.lower() not in (".mxl", ".xml"):
            continue
        match = _BWV_RE.match(path.name)
        if match is None or int(match.group(1)) > _MAX_CHORALE_BWV:
            continue
        found[f"{path.parent.name}/{path.name}"] = path
    return sorted(found.items())


# --------------------------------------------------------------------------- piano roll


def events_to_roll(
    events: Iterable[tuple[float, float, int]], total_quarter_length: float | None = None
) -> np.ndarray:
    """Quantise note events to a binary piano roll (frame rule in the module docstring).

    Args:
        events: ``(offset, duration, midi)`` triples; ``offset`` and ``duration`` in quarter
            notes (``offset >= 0``), ``midi`` an integer MIDI pitch in ``21..108``.
        total_quarter_length: Length of the piece in quarter notes; the roll has
            ``ceil(total_quarter_length / 0.5)`` frames, extended if a note runs past it.
            ``None`` means the end of the last note.

    Returns:
        uint8 array of shape ``(frames, 88)`` with values in ``{0, 1}``.

    Raises:
        ValueError: a pitch outside ``21..108``, a negative offset or a negative duration.
    """
    spans: list[tuple[int, int, int]] = []
    n_frames = 0
    if total_quarter_length is not None:
        n_frames = max(0, math.ceil(total_quarter_length / FRAME_QUARTER_LENGTH - _EPS))
    for offset, duration, midi in events:
        key = int(midi) - LOWEST_MIDI
        if not 0 <= key < NUM_KEYS:
            raise ValueError(f"MIDI pitch {midi} outside the 88-key range 21..108")
        if offset < 0 or duration < 0:
            raise ValueError(f"note with negative offset/duration: ({offset}, {duration})")
        # Frames t with offset <= 0.5 t < offset + duration.
        start = math.ceil(offset / FRAME_QUARTER_LENGTH - _EPS)
        stop = math.ceil((offset + duration) / FRAME_QUARTER_LENGTH - _EPS)
        if stop > start:
            spans.append((start, stop, key))
            n_frames = max(n_frames, stop)
    roll = np.zeros((n_frames, NUM_KEYS), dtype=np.uint8)
    for start, stop, key in spans:
        roll[start:stop, key] = 1
    return roll


def parse_chorale(path: str | Path) -> np.ndarray:
    """Parse one MusicXML file with music21 into a ``(frames, 88)`` uint8 piano roll."""
    from music21 import converter, harmony, stream

    score: Any = converter.parse(str(path))
    if isinstance(score, stream.Opus):
        scores = list(score.scores)
        if not scores:
            raise ValueError(f"{path}: empty opus")
        score = scores[0]
    score.toSoundingPitch(inPlace=True)
    events: list[tuple[float, float, int]] = []
    for element in score.flatten().notes:
        if isinstance(element, harmony.Harmony):  # chord symbols are annotations, not notes
            continue
        offset = float(element.offset)
        duration = float(element.duration.quarterLength)
        for pitch in getattr(element, "pitches", ()):
            events.append((offset, duration, int(pitch.midi)))
    return events_to_roll(events, float(score.highestTime))


# --------------------------------------------------------------------------- cache


def _resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_DIR_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pcm_sim"


def cache_path(cache_dir: str | Path | None = None, max_pieces: int | None = None) -> Path:
    """Path of the ``.npz`` cache for a build with ``max_pieces`` (``None`` = all pieces).

    ``cache_dir`` defaults to ``$PCM_SIM_CACHE_DIR``, else ``~/.cache/pcm_sim``.
    """
    name = f"chorales_v{CACHE_VERSION}"
    if max_pieces is not None:
        name += f"_max{max_pieces}"
    return _resolve_cache_dir(cache_dir) / f"{name}.npz"


def _build(max_pieces: int | None, progress: bool) -> dict[str, np.ndarray]:
    """Parse the corpus; return the arrays stored in the cache file."""
    from tqdm import tqdm

    entries = chorale_corpus_paths()
    if max_pieces is not None:
        entries = entries[:max_pieces]
    keys: list[str] = []
    splits: list[str] = []
    rolls: list[np.ndarray] = []
    skipped: list[str] = []
    for key, path in tqdm(
        entries,
        desc="Parsing Bach chorales",
        unit="piece",
        mininterval=1.0,
        disable=not progress,
    ):
        try:
            roll = parse_chorale(path)
        except Exception as exc:  # music21 raises many exception types on bad files
            logger.warning("skipping %s: %s: %s", key, type(exc).__name__, exc)
            skipped.append(key)
            continue
        if roll.shape[0] == 0 or not roll.any():
            logger.warning("skipping %s: no sounding frame", key)
            skipped.append(key)
            continue
        keys.append(key)
        splits.append(assign_split(key))
        rolls.append(roll)
    if skipped:
        logger.warning("skipped %d of %d chorale files", len(skipped), len(entries))
    lengths = np.array([r.shape[0] for r in rolls], dtype=np.int64)
    frames = np.concatenate(rolls, axis=0) if rolls else np.zeros((0, NUM_KEYS), dtype=np.uint8)
    return {
        "version": np.array(CACHE_VERSION, dtype=np.int64),
        "max_pieces": np.array(-1 if max_pieces is None else max_pieces, dtype=np.int64),
        "keys": np.array(keys, dtype=np.str_),
        "splits": np.array(splits, dtype=np.str_),
        "lengths": lengths,
        "frames": frames,
        "skipped": np.array(skipped, dtype=np.str_),
    }


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` via a temporary file + rename (no half-written cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_cache(path: Path, max_pieces: int | None) -> dict[str, np.ndarray] | None:
    """Arrays of a valid cache file, or ``None`` if it is absent, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        if int(arrays["version"]) != CACHE_VERSION:
            return None
        if int(arrays["max_pieces"]) != (-1 if max_pieces is None else max_pieces):
            return None
        if int(arrays["lengths"].sum()) != arrays["frames"].shape[0]:
            return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable chorale cache %s: %s", path, exc)
        return None
    return arrays


def load_chorales(
    cache_dir: str | Path | None = None,
    max_pieces: int | None = None,
    *,
    progress: bool = True,
    rebuild: bool = False,
) -> dict[str, list[np.ndarray]]:
    """Bach chorale piano rolls split into train/valid/test (see the module docstring).

    The first call parses the corpus with music21 (minutes for all pieces, with a tqdm
    progress bar) and writes the cache; later calls only read the cache.

    Args:
        cache_dir: Cache directory; ``None`` means ``$PCM_SIM_CACHE_DIR`` or
            ``~/.cache/pcm_sim``.
        max_pieces: Use only the first ``max_pieces`` chorales in corpus-path order (for
            tests); cached under its own file name.
        progress: Show the progress bar while building.
        rebuild: Ignore an existing cache and build again.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``; each entry a uint8 array of
        shape ``(frames, 88)`` with values in ``{0, 1}`` (one frame = one eighth note), in
        corpus-path order.
    """
    if max_pieces is not None and max_pieces < 1:
        raise ValueError(f"max_pieces must be >= 1 or None, got {max_pieces}")
    path = cache_path(cache_dir, max_pieces)
    arrays = None if rebuild else _read_cache(path, max_pieces)
    if arrays is None:
        t0 = time.perf_counter()
        arrays = _build(max_pieces, progress)
        _save_atomic(path, arrays)
        logger.info(
            "built %d chorales in %.1f s, cached at %s",
            len(arrays["keys"]),
            time.perf_counter() - t0,
            path,
        )
    result: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    bounds = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    frames = arrays["frames"]
    for i, split in enumerate(arrays["splits"]):
        result[str(split)].append(frames[bounds[i] : bounds[i + 1]])
    return result


# --------------------------------------------------------------------------- training helpers


def frame_nll(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Bernoulli negative log-likelihood per frame, in nats.

    ``-sum_k [y_k log sigmoid(z_k) + (1 - y_k) log(1 - sigmoid(z_k))]`` summed over the 88
    keys, then averaged over the valid frames.

    Args:
        logits: Pre-sigmoid scores ``z``, shape ``(T, B, 88)``.
        targets: Binary (or soft) targets ``y`` in ``[0, 1]``, shape ``(T, B, 88)``.
        mask: ``(T, B)`` bool or 0/1 weights marking valid frames; ``None`` = all valid.

    Returns:
        Scalar tensor: mean NLL per valid frame (differentiable w.r.t. ``logits``).

    Raises:
        ValueError: mismatched shapes, or a mask with no valid frame.
    """
    if logits.shape != targets.shape or logits.dim() != 3:
        raise ValueError(
            f"logits and targets must both be (T, B, K), got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    per_frame = F.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), reduction="none"
    ).sum(dim=-1)
    if mask is None:
        return per_frame.mean()
    if mask.shape != per_frame.shape:
        raise ValueError(f"mask must have shape {tuple(per_frame.shape)}, got {tuple(mask.shape)}")
    weights = mask.to(per_frame.dtype)
    total = weights.sum()
    if float(total) <= 0:
        raise ValueError("mask selects no frame")
    return (per_frame * weights).sum() / total


class SequenceBatch(NamedTuple):
    """One padded next-frame-prediction batch (time-major)."""

    inputs: torch.Tensor
    """float32 ``(T - 1, B, 88)``: frames ``0 .. T-2`` of each sequence (zero padded)."""
    targets: torch.Tensor
    """float32 ``(T - 1, B, 88)``: frames ``1 .. T-1`` (zero padded)."""
    mask: torch.Tensor
    """bool ``(T - 1, B)``: True where the target frame exists in the sequence."""
    lengths: torch.Tensor
    """int64 ``(B,)``: original number of frames of each sequence."""


def batch_sequences(
    seqs: Sequence[np.ndarray | torch.Tensor],
    batch_size: int,
    generator: torch.Generator | None,
) -> Iterator[SequenceBatch]:
    """Yield padded next-frame-prediction batches from variable-length piano rolls.

    Args:
        seqs: Rolls of shape ``(frames_i, 88)`` (any numeric dtype, values 0/1).
        batch_size: Sequences per batch; the last batch may be smaller.
        generator: Shuffles the order of the sequences (one ``randperm`` draw per call);
            ``None`` keeps the given order (for evaluation).

    Yields:
        :class:`SequenceBatch` with ``T = max frames_i`` in the batch: ``inputs`` are frames
        ``0..T-2``, ``targets`` frames ``1..T-1``, ``mask[t, b]`` is True iff
        ``t + 1 < frames_b``. A sequence with fewer than 2 frames contributes no valid frame.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(seqs)
    order = list(range(n)) if generator is None else torch.randperm(n, generator=generator).tolist()
    for first in range(0, n, batch_size):
        chunk = [torch.as_tensor(seqs[i]) for i in order[first : first + batch_size]]
        for roll in chunk:
            if roll.dim() != 2:
                raise ValueError(f"each sequence must be (frames, K), got {tuple(roll.shape)}")
        lengths = torch.tensor([r.shape[0] for r in chunk], dtype=torch.int64)
        n_keys = chunk[0].shape[1]
        t_max = max(2, int(lengths.max()))
        padded = torch.zeros((t_max, len(chunk), n_keys), dtype=torch.float32)
        for b, roll in enumerate(chunk):
            padded[: roll.shape[0], b] = roll.to(torch.float32)
        steps = torch.arange(t_max - 1).unsqueeze(1)
        mask = steps + 1 < lengths.unsqueeze(0)
        yield SequenceBatch(padded[:-1], padded[1:], mask, lengths)
