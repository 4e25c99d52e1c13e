"""Tests for pcm_sim.data: IDX/Fashion-MNIST loading, rate coding, Bach chorales."""

from __future__ import annotations

import gzip
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from pcm_sim.data import chorales as ch
from pcm_sim.data.encoding import bernoulli_rate_code
from pcm_sim.data.fashion_mnist import DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist, read_idx

# --------------------------------------------------------------------------- IDX / Fashion-MNIST


def _idx_bytes(type_code: int, fmt: str, dims: tuple[int, ...], values: Sequence[float]) -> bytes:
    """Hand-assemble an IDX file: magic, big-endian uint32 dims, big-endian payload."""
    header = struct.pack(">BBBB", 0, 0, type_code, len(dims))
    header += struct.pack(f">{len(dims)}I", *dims)
    return header + struct.pack(f">{len(values)}{fmt}", *values)


def test_read_idx_ubyte_exact_values(tmp_path: Path) -> None:
    values = [0, 1, 2, 127, 128, 255, 3, 4, 5, 6, 7, 8]
    path = tmp_path / "tiny-idx3-ubyte"
    path.write_bytes(_idx_bytes(0x08, "B", (2, 2, 3), values))
    arr = read_idx(path)
    assert arr.dtype == np.uint8
    assert arr.shape == (2, 2, 3)
    assert arr.tolist() == [[[0, 1, 2], [127, 128, 255]], [[3, 4, 5], [6, 7, 8]]]


def test_read_idx_gzip_and_wide_types(tmp_path: Path) -> None:
    ints = [-2, 70000, 5]
    gz_path = tmp_path / "ints-idx1-int.gz"
    gz_path.write_bytes(gzip.compress(_idx_bytes(0x0C, "i", (3,), ints)))
    arr = read_idx(gz_path, expected_ndim=1)
    assert arr.dtype == np.int32
    assert arr.tolist() == ints

    doubles = [0.5, -1.25, 3.0, 1e-3]
    path = tmp_path / "doubles-idx2"
    path.write_bytes(_idx_bytes(0x0E, "d", (2, 2), doubles))
    arr = read_idx(path)
    assert arr.dtype == np.float64
    assert arr.dtype.byteorder in ("=", "<", "|")  # converted to native order
    assert arr.tolist() == [[0.5, -1.25], [3.0, 1e-3]]


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
        (b"\x00\x00\x08\x00", "bad IDX magic"),
        (b"\x00\x00", "expected a 4-byte magic"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 2), "truncated IDX header"),
        (_idx_bytes(0x08, "B", (2, 3), [1, 2, 3, 4, 5]), "expected 6"),
        (_idx_bytes(0x08, "B", (2,), [1, 2, 3]), "expected 2"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path: Path, payload: bytes, match: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_read_idx_wrong_ndim_and_bad_gzip(tmp_path: Path) -> None:
    path = tmp_path / "two-d"
    path.write_bytes(_idx_bytes(0x08, "B", (1, 2), [1, 2]))
    with pytest.raises(ValueError, match="2 dimension\\(s\\), expected 3"):
        read_idx(path, expected_ndim=3)
    gz_path = tmp_path / "not-gzip.gz"
    gz_path.write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match=r"not-gzip\.gz"):
        read_idx(gz_path)


def _write_fake_mnist(directory: Path, prefix: str, n: int, gz: bool) -> np.ndarray:
    rng = np.random.default_rng(1234)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    img = _idx_bytes(0x08, "B", (n, 28, 28), images.ravel().tolist())
    lab = _idx_bytes(0x08, "B", (n,), labels.tolist())
    suffix = ".gz" if gz else ""
    if gz:
        img, lab = gzip.compress(img), gzip.compress(lab)
    (directory / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(img)
    (directory / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(lab)
    return images


def test_load_fashion_mnist_fake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_images = _write_fake_mnist(tmp_path, "train", 12, gz=True)
    test_images = _write_fake_mnist(tmp_path, "t10k", 5, gz=False)

    x, y = load_fashion_mnist(tmp_path, split="train")
    assert x.shape == (12, 784) and x.dtype == torch.float32
    assert y.shape == (12,) and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(train_images.reshape(12, 784)).float() / 255.0)
    assert y.tolist() == [i % 10 for i in range(12)]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0

    monkeypatch.setenv("PCM_SIM_DATA_DIR", str(tmp_path))
    x_test, y_test = load_fashion_mnist(split="test")
    assert x_test.shape == (5, 784)
    assert torch.equal(x_test[3], torch.from_numpy(test_images[3].ravel()).float() / 255.0)
    assert y_test.tolist() == [0, 1, 2, 3, 4]


def test_load_fashion_mnist_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as info:
        load_fashion_mnist(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path)  # directory exists but is empty
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist(tmp_path, split="valid")  # type: ignore[arg-type]


def test_load_fashion_mnist_rejects_mismatched_counts(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, "train", 4, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(0x08, "B", (3,), [0, 1, 2]))
    with pytest.raises(ValueError, match="3 labels but"):
        load_fashion_mnist(tmp_path)


_REAL_DIR = DEFAULT_FASHION_MNIST_DIR
_HAVE_REAL = (_REAL_DIR / "train-images-idx3-ubyte.gz").is_file() or (
    _REAL_DIR / "train-images-idx3-ubyte"
).is_file()


@pytest.mark.skipif(
    not _HAVE_REAL,
    reason=f"Fashion-MNIST not installed at {_REAL_DIR} (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist() -> None:
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = load_fashion_mnist(_REAL_DIR, split=split)  # type: ignore[arg-type]
        assert x.shape == (n, 784) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
        assert int(y.min()) == 0 and int(y.max()) == 9
        assert torch.bincount(y, minlength=10).tolist() == [n // 10] * 10


# --------------------------------------------------------------------------- rate coding


def test_rate_code_mean_matches_intensity() -> None:
    probs = torch.tensor([[0.0, 0.1, 0.25, 0.5], [0.75, 0.9, 1.0, 0.03]])
    steps = 20000
    spikes = bernoulli_rate_code(probs, steps, torch.Generator().manual_seed(0))
    assert spikes.shape == (steps, 2, 4) and spikes.dtype == torch.float32
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    rate = spikes.mean(dim=0)
    std = torch.sqrt(probs * (1 - probs) / steps)
    # 5 sigma per element (8 elements): a spurious failure has probability < 1e-5.
    assert torch.all((rate - probs).abs() <= 5 * std + 1e-12)
    assert rate[0, 0] == 0.0 and rate[1, 2] == 1.0  # p=0 never fires, p=1 always fires


def test_rate_code_reproducible_and_seed_dependent() -> None:
    images = torch.rand(3, 50, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a = bernoulli_rate_code(images, 30, torch.Generator().manual_seed(11))
    b = bernoulli_rate_code(images, 30, torch.Generator().manual_seed(11))
    c = bernoulli_rate_code(images, 30, torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    "images",
    [
        torch.tensor([[0.2, float("nan")]]),
        torch.tensor([[0.2, -0.01]]),
        torch.tensor([[1.0001, 0.5]]),
        torch.zeros(2, 3, 4),
        torch.zeros(3, dtype=torch.float32),
        torch.zeros(2, 3, dtype=torch.int64),
    ],
)
def test_rate_code_rejects_invalid_images(images: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        bernoulli_rate_code(images, 4, torch.Generator().manual_seed(0))


def test_rate_code_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="steps"):
        bernoulli_rate_code(torch.zeros(1, 2), 0, torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- piano roll rule


def test_events_to_roll_frame_rule() -> None:
    events = [
        (0.0, 1.0, 60),  # quarter at 0 -> frames 0, 1
        (0.25, 0.25, 62),  # sixteenth off the beat: covers no frame start -> absent
        (0.5, 0.25, 64),  # sixteenth on a frame start -> frame 1
        (1.0, 1.5, 21),  # lowest key, dotted quarter -> frames 2, 3, 4
        (1.0 / 3.0, 2.0 / 3.0, 108),  # triplet from 1/3 to 1 -> frame 1 only
        (2.0, 0.0, 70),  # grace note -> absent
    ]
    roll = ch.events_to_roll(events, total_quarter_length=3.0)
    assert roll.shape == (6, 88) and roll.dtype == np.uint8
    expected = np.zeros((6, 88), dtype=np.uint8)
    expected[0:2, 60 - 21] = 1
    expected[1, 64 - 21] = 1
    expected[2:5, 0] = 1
    expected[1, 87] = 1
    assert np.array_equal(roll, expected)

    # The roll is extended when a note runs past the stated length.
    assert ch.events_to_roll([(0.0, 2.0, 60)], total_quarter_length=0.5).shape == (4, 88)
    with pytest.raises(ValueError, match="MIDI pitch 20"):
        ch.events_to_roll([(0.0, 1.0, 20)])
    with pytest.raises(ValueError, match="MIDI pitch 109"):
        ch.events_to_roll([(0.0, 1.0, 109)])


def test_assign_split_is_stable_and_roughly_80_10_10() -> None:
    assert ch.assign_split("bach/bwv250.mxl") == ch.assign_split("bach/bwv250.mxl")
    counts = {name: 0 for name in ch.SPLITS}
    for i in range(5000):
        counts[ch.assign_split(f"bach/piece{i}.mxl")] += 1
    assert abs(counts["train"] - 4000) < 150
    assert abs(counts["valid"] - 500) < 100
    assert abs(counts["test"] - 500) < 100


# --------------------------------------------------------------------------- chorale pipeline

_N_PIECES = 4


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache_dir = tmp_path_factory.mktemp("chorale_cache")
    ch.load_chorales(cache_dir=cache_dir, max_pieces=_N_PIECES, progress=False)
    return cache_dir


def test_chorales_small_build(small_cache: Path) -> None:
    cache_file = small_cache / f"chorales_v1_max{_N_PIECES}.npz"
    assert cache_file.is_file()
    assert not (small_cache / "chorales_v1.npz").exists()  # full cache untouched

    data = ch.load_chorales(cache_dir=small_cache, max_pieces=_N_PIECES, progress=False)
    assert set(data) == {"train", "valid", "test"}
    rolls = [r for name in ch.SPLITS for r in data[name]]
    assert len(rolls) == _N_PIECES
    for roll in rolls:
        assert roll.ndim == 2 and roll.shape[1] == 88 and roll.shape[0] > 8
        assert roll.dtype == np.uint8
        assert set(np.unique(roll).tolist()) <= {0, 1}
        notes_per_frame = roll.sum(axis=1)
        assert notes_per_frame.max() >= 3  # four-part harmony
        assert (notes_per_frame > 0).mean() > 0.8  # chorales rarely rest in all voices
        # Sounding keys of SATB chorales lie well inside the piano (roughly C2..C6).
        active = np.flatnonzero(roll.any(axis=0)) + 21
        assert active.min() >= 36 and active.max() <= 84

    with np.load(cache_file) as npz:
        keys = npz["keys"].tolist()
        splits = npz["splits"].tolist()
    assert keys == sorted(keys) and len(keys) == _N_PIECES
    assert splits == [ch.assign_split(k) for k in keys]
    for name in ch.SPLITS:
        assert len(data[name]) == splits.count(name)


def test_chorales_roll_matches_music21_pitches(small_cache: Path) -> None:
    from music21 import converter

    key, path = ch.chorale_corpus_paths()[0]
    score = converter.parse(str(path))
    midis = {int(p.midi) for n in score.flatten().notes for p in n.pitches}
    assert all(21 <= m <= 108 for m in midis)

    with np.load(small_cache / f"chorales_v1_max{_N_PIECES}.npz") as npz:
        keys = npz["keys"].tolist()
        splits = npz["splits"].tolist()
    data = ch.load_chorales(cache_dir=small_cache, max_pieces=_N_PIECES, progress=False)
    split = splits[keys.index(key)]
    position = [k for k, s in zip(keys, splits, strict=True) if s == split].index(key)
    roll = data[split][position]
    assert np.array_equal(roll, ch.parse_chorale(path))
    active = set((np.flatnonzero(roll.any(axis=0)) + 21).tolist())
    assert active <= midis
    assert len(active) >= 0.8 * len(midis)  # only short off-beat notes may vanish
    assert roll.shape[0] == math.ceil(2 * float(score.highestTime) - 1e-9)


def test_chorales_deterministic_and_cached(
    small_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ch.load_chorales(cache_dir=small_cache, max_pieces=_N_PIECES, progress=False)
    # A second, independent build (cache dir from the environment variable) is identical.
    monkeypatch.setenv("PCM_SIM_CACHE_DIR", str(tmp_path))
    second = ch.load_chorales(max_pieces=_N_PIECES, progress=False)
    assert (tmp_path / f"chorales_v1_max{_N_PIECES}.npz").is_file()
    for name in ch.SPLITS:
        assert len(first[name]) == len(second[name])
        for a, b in zip(first[name], second[name], strict=True):
            assert np.array_equal(a, b)

    # Reloading must come from the cache, without parsing again.
    def _no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("cache was not used")

    monkeypatch.setattr(ch, "_build", _no_build)
    again = ch.load_chorales(max_pieces=_N_PIECES, progress=False)
    for name in ch.SPLITS:
        assert all(np.array_equal(a, b) for a, b in zip(first[name], again[name], strict=True))
    with pytest.raises(AssertionError, match="cache was not used"):
        ch.load_chorales(max_pieces=_N_PIECES + 1, progress=False)  # different cache key


def test_chorale_corpus_selection() -> None:
    entries = ch.chorale_corpus_paths()
    keys = [k for k, _ in entries]
    assert len(entries) > 350
    assert keys == sorted(keys)
    assert all(k.startswith("bach/bwv") and k.endswith((".mxl", ".xml")) for k in keys)
    assert not any(k.startswith("bach/bwv846") for k in keys)  # keyboard prelude


# --------------------------------------------------------------------------- NLL and batching


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_frame_nll_hand_computed() -> None:
    logits = torch.zeros(1, 1, 88, dtype=torch.float64)
    targets = torch.zeros(1, 1, 88, dtype=torch.float64)
    logits[0, 0, 0], targets[0, 0, 0] = 2.0, 1.0  # -log sigmoid(2) = softplus(-2)
    logits[0, 0, 1], targets[0, 0, 1] = -1.0, 1.0  # softplus(1)
    logits[0, 0, 2], targets[0, 0, 2] = 3.0, 0.0  # -log(1 - sigmoid(3)) = softplus(3)
    # remaining 85 keys: logit 0, target 0 -> log 2 each
    expected = _softplus(-2.0) + _softplus(1.0) + _softplus(3.0) + 85 * math.log(2.0)
    assert float(ch.frame_nll(logits, targets)) == pytest.approx(expected, rel=1e-12)
    mask = torch.ones(1, 1, dtype=torch.bool)
    assert float(ch.frame_nll(logits, targets, mask)) == pytest.approx(expected, rel=1e-12)


def test_frame_nll_mask_averages_valid_frames() -> None:
    logits = torch.zeros(3, 2, 88)
    targets = torch.zeros(3, 2, 88)
    targets[0, 0, :4] = 1.0  # still log 2 per key at logit 0
    logits[2, 1] = 50.0  # masked-out frame with a huge loss
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    assert float(ch.frame_nll(logits, targets, mask)) == pytest.approx(88 * math.log(2.0))
    assert float(ch.frame_nll(logits, targets)) > 88 * math.log(2.0) + 500
    with pytest.raises(ValueError, match="no frame"):
        ch.frame_nll(logits, targets, torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        ch.frame_nll(logits, targets, torch.ones(3, 1))


def test_batch_sequences_padding_and_shift() -> None:
    seqs = [np.full((n, 88), 0, dtype=np.uint8) for n in (5, 3, 7)]
    for i, s in enumerate(seqs):
        s[:, i] = 1
        s[np.arange(len(s)), 10 + np.arange(len(s))] = 1  # frame index marker
    batches = list(ch.batch_sequences(seqs, batch_size=2, generator=None))
    assert [b.inputs.shape for b in batches] == [(4, 2, 88), (6, 1, 88)]
    first = batches[0]
    assert first.lengths.tolist() == [5, 3]
    assert first.mask.tolist() == [[True, True], [True, True], [True, False], [True, False]]
    assert torch.equal(first.inputs[:, 0], torch.from_numpy(seqs[0][:-1]).float())
    assert torch.equal(first.targets[:, 0], torch.from_numpy(seqs[0][1:]).float())
    assert torch.equal(first.targets[:2, 1], torch.from_numpy(seqs[1][1:]).float())
    assert torch.equal(first.inputs[:3, 1], torch.from_numpy(seqs[1]).float())
    assert float(first.inputs[3:, 1].abs().sum()) == 0.0  # padding is zero
    assert float(first.targets[2:, 1].abs().sum()) == 0.0
    assert first.inputs.dtype == torch.float32 and first.mask.dtype == torch.bool

    def order(seed: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(seed)
        return [b.lengths.tolist() for b in ch.batch_sequences(seqs, 1, gen)]

    assert order(3) == order(3)
    assert sorted(x for b in order(3) for x in b) == [3, 5, 7]
    assert any(order(s) != order(0) for s in range(1, 10))
