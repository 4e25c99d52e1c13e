"""Fashion-MNIST loading from IDX files.

The IDX format (LeCun et al., the original MNIST distribution) is a big-endian binary
layout: a 4-byte magic number ``0x00 0x00 <type code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the row-major payload.

By default the files are read from ``/usr/share/datasets/fashion-mnist/`` (Debian package
``dataset-fashion-mnist``), which installs::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

The environment variable ``PCM_SIM_DATA_DIR`` overrides the default directory; an explicit
``data_dir`` argument overrides both. Uncompressed files and the ``name.idx3-ubyte`` spelling
are accepted too, so a classic MNIST directory works as well.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

__all__ = [
    "DATA_DIR_ENV_VAR",
    "DEFAULT_FASHION_MNIST_DIR",
    "load_fashion_mnist",
    "read_idx",
    "resolve_data_dir",
]

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Directory installed by the Debian package ``dataset-fashion-mnist``."""

DATA_DIR_ENV_VAR = "PCM_SIM_DATA_DIR"
"""Environment variable that overrides :data:`DEFAULT_FASHION_MNIST_DIR`."""

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_IMAGE_SIDE = 28
_NUM_CLASSES = 10
_PREFIX = {"train": "train", "test": "t10k"}
_INSTALL_HINT = "install the Debian package 'dataset-fashion-mnist' or pass --data-dir"


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed, if the name ends in ``.gz``) contents of ``path``."""
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
            raise ValueError(f"{path}: not a readable gzip file ({exc})") from None
    return path.read_bytes()


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Args:
        path: File to read. A name ending in ``.gz`` is decompressed with gzip.
        expected_ndim: If given, the file must declare exactly this many dimensions.

    Returns:
        Array whose shape is the dimension sizes stored in the header and whose dtype is the
        native-endian equivalent of the stored type (``uint8`` for MNIST-style files).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad magic number, unknown type code, unexpected number of dimensions or a
            payload whose size does not match the header. The message is one line naming the
            file and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(
            f"{path}: not an IDX file (expected a 4-byte magic number, got {len(raw)} bytes)"
        )
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000TTNN with type "
            f"code TT in {{08,09,0b,0c,0d,0e}} and NN >= 1 dimensions)"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"{path}: IDX file has {ndim} dimension(s), expected {expected_ndim}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header (expected {header_len} bytes for {ndim} "
            f"dimension(s), got {len(raw)})"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected_payload = math.prod(dims) * dtype.itemsize
    payload = len(raw) - header_len
    if payload != expected_payload:
        raise ValueError(
            f"{path}: IDX payload is {payload} bytes, expected {expected_payload} for shape "
            f"{dims} of {dtype.name}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the Fashion-MNIST directory: ``data_dir``, else ``$PCM_SIM_DATA_DIR``, else the
    Debian default :data:`DEFAULT_FASHION_MNIST_DIR`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_FASHION_MNIST_DIR


def _find_file(directory: Path, prefix: str, kind: str, idx: str) -> Path:
    """Find ``{prefix}-{kind}-{idx}-ubyte`` (or ``.{idx}-ubyte``), with or without ``.gz``."""
    candidates = [
        f"{prefix}-{kind}-{idx}-ubyte",
        f"{prefix}-{kind}.{idx}-ubyte",
    ]
    for name in candidates:
        for suffix in ("", ".gz"):
            candidate = directory / (name + suffix)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {directory / candidates[0]}[.gz] not found; {_INSTALL_HINT}"
    )


def load_fashion_mnist(
    data_dir: str | Path | None = None,
    split: Literal["train", "test"] = "train",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of Fashion-MNIST (or MNIST: the file layout is identical).

    Args:
        data_dir: Directory holding the IDX files; ``None`` means ``$PCM_SIM_DATA_DIR`` or
            ``/usr/share/datasets/fashion-mnist/``.
        split: ``"train"`` (60000 images) or ``"test"`` (10000 images).

    Returns:
        ``(images, labels)``: ``images`` is float32 of shape ``(N, 784)`` with pixel
        intensities scaled to ``[0, 1]`` (row-major 28x28); ``labels`` is int64 of shape
        ``(N,)`` with class indices ``0..9``.

    Raises:
        FileNotFoundError: the directory or one of the two files is missing.
        ValueError: ``split`` is unknown or the files are malformed/inconsistent.
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = resolve_data_dir(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST directory {directory} does not exist; {_INSTALL_HINT}"
        )
    prefix = _PREFIX[split]
    images_path = _find_file(directory, prefix, "images", "idx3")
    labels_path = _find_file(directory, prefix, "labels", "idx1")

    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.dtype != np.uint8 or images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} "
            f"{images.shape}"
        )
    if labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected uint8 labels, got {labels.dtype}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: {labels.shape[0]} labels but {images_path} holds "
            f"{images.shape[0]} images"
        )
    if labels.size and int(labels.max()) >= _NUM_CLASSES:
        raise ValueError(
            f"{labels_path}: label {int(labels.max())} outside the expected range 0..9"
        )

    x = torch.from_numpy(images.reshape(images.shape[0], -1)).to(torch.float32).div_(255.0)
    y = torch.from_numpy(labels).to(torch.int64)
    return x, y
