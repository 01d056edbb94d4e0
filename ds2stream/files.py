"""Writing files so that a crash leaves the old file or the new one, never half of one: write to a
temporary name, fsync it, rename it over the target, fsync the folder (the rename). Shard sets,
checkpoints and run directories all write this way."""
from __future__ import annotations

import os
from pathlib import Path


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """Rename a complete ``tmp`` over ``path`` so that a crash leaves one or the other, whole."""
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(Path(path).parent)


def write_durably(path: Path, data: bytes | str) -> None:
    """``data`` (bytes, or text as UTF-8) into ``path`` through a temporary ``<name>.tmp``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    replace_durably(tmp, path)
