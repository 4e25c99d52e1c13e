"""Output files written whole or not at all, and the checks of an output path.

Every file pcm-sim writes (reports, figures, CSV, JSON) goes through :func:`atomic_output`: the
content is written to a hidden temporary file in the target's directory and renamed over the
target only once complete (``os.replace`` is atomic on one file system), so an interrupted or
failing write leaves the previous file, or none, never a half-written one.

:func:`output_file_problem` and :func:`output_dir_problem` say, before any work starts, why a
path cannot receive an output (a directory where a file is expected, a file where a directory is
expected, an ancestor that is not a directory, a directory without write permission); commands
turn that into one line and exit code 2.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "output_dir_problem", "output_file_problem", "write_text_atomic"]


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The parent directory is created if needed.  On an exception the temporary file is removed
    and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _ancestor_problem(path: Path) -> str | None:
    """Why the nearest existing ancestor of ``path`` cannot receive new entries (or None)."""
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None


def output_file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be written as a file, or ``None`` if it can."""
    target = Path(path)
    if target.is_dir():
        return f"{target} is a directory, expected a file path"
    if target.exists() and not os.access(target, os.W_OK):
        return f"{target} is not writable"
    problem = _ancestor_problem(target)
    return f"cannot write {target}: {problem}" if problem else None


def output_dir_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be (created and) filled as a directory, or ``None`` if it can."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        return f"{target} is a file, expected a directory"
    if target.is_dir():
        if not os.access(target, os.W_OK | os.X_OK):
            return f"directory {target} is not writable"
        return None
    problem = _ancestor_problem(target)
    return f"cannot create {target}: {problem}" if problem else None
