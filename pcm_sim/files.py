"""Input files: the shipped YAML files (device profiles, model recipes) and checked text reads.

A shipped file is named by its stem (``pcm_nandakumar2019``) or given as a path;
:func:`resolve_yaml` turns either into the file to read.  :func:`read_bytes` and
:func:`decode_text` read a user's text file (a profile, a measurement CSV) and fail with one line
naming the file when it cannot be read, is too large, is not in the expected encoding or holds
NUL bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

__all__ = ["decode_text", "read_bytes", "resolve_yaml", "shipped_dir", "shipped_names"]

ErrorFn = Callable[[str], Exception]
"""Makes the exception to raise from a one-line message (an exception class will do)."""


def shipped_dir(folder: str) -> Path:
    """Directory ``folder`` of the package data (so it works after ``pip install .``)."""
    return Path(str(resources.files("pcm_sim") / "data_files" / folder))


def shipped_names(directory: Path) -> list[str]:
    """Names (stems) of the YAML files in ``directory``, sorted."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def resolve_yaml(name_or_path: str | Path, directory: Path, kind: str, error: ErrorFn) -> Path:
    """The file ``name_or_path`` means: itself if it ends in ``.yaml`` / ``.yml`` or exists,
    else the shipped ``directory/<name>.yaml``; raises ``error`` naming the ``kind`` (profile,
    recipe) and the shipped names if there is no such shipped file."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.exists():
        return path
    path = directory / f"{text}.yaml"
    if not path.exists():
        raise error(
            f"unknown {kind} {text!r}: expected a YAML path or one of {shipped_names(directory)}"
        )
    return path


def read_bytes(path: str | Path, error: ErrorFn, max_bytes: int | None = None) -> bytes:
    """The bytes of the file at ``path``; raises ``error`` naming ``path`` if it cannot be read
    or is over ``max_bytes`` (``None``: no limit)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror})") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise error(f"{path}: file is {len(raw)} bytes, expected at most {max_bytes}")
    return raw


def decode_text(
    raw: bytes, path: str | Path, error: ErrorFn, not_text_hint: str, encoding: str = "utf-8"
) -> str:
    """``raw`` (the bytes of the file at ``path``) decoded with ``encoding`` (``utf-8`` or
    ``utf-8-sig``); raises ``error`` naming ``path`` if it does not decode (the message ends
    with ``not_text_hint`` in brackets) or contains NUL bytes."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text ({not_text_hint})") from None
    if "\x00" in text:
        raise error(f"{path}: not a text file (contains NUL bytes)")
    return text
