"""Files written so that a crash never leaves a half-written one, their sha256, and the ``.jsonl`` logs of a run.

Every module that writes a result a user keeps (checkpoints, weights, cards, images, FID statistics) goes through
:func:`atomic_output`, so the guarantee is made in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def usual_permissions(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``open()`` would (0666 minus the umask): ``mkstemp`` and safetensors make
    0600 files, which other users of a shared weights folder could not read."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (``.<name>.<random>.tmp``) for the caller to write; when the block ends
    without an error the file is fsynced, given the usual permissions and renamed over ``path``, otherwise it is
    removed. Readers therefore see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_output`)."""
    return atomic_write_bytes(path, text.encode(encoding))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights files are tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``.jsonl`` log (``[]`` when the file does not exist). A last line cut short by a crash is
    skipped; any other bad line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines):
                break  # the write of the last row was interrupted
            raise ValueError(f"{path}:{i}: not a JSON line: {err}") from None
        rows.append(row)
    return rows


def append_jsonl(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row as a JSON line (one ``write`` call, so concurrent readers see whole lines)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
