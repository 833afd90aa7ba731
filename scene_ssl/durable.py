"""Files that survive crashes: free space checked before writing, data flushed before a rename,
and a manifest that says whether a folder is whole.

A checkpoint is written into a temporary folder, its files are flushed to disk (``fsync``), a
``manifest.json`` listing every file with its size and CRC-32 is written last, and only then is
the folder renamed into place: a crash, a power cut or a full disk leaves the previous one
intact, and a folder later damaged (a truncated copy, a storage fault) is recognised before
anything loads it. An export is written, flushed and renamed the same way (timm and the Hub
read it; it carries no manifest).

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "weights.bin").write_bytes(b"0123456789")
    >>> _ = write_manifest(folder); check_manifest(folder) is None
    True
    >>> _ = (folder / "weights.bin").write_bytes(b"01234")  # truncated
    >>> check_manifest(folder)
    'weights.bin has 5 bytes, its manifest says 10'
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import zlib
from pathlib import Path

__all__ = ["InsufficientDiskSpace", "require_free_space", "is_disk_full", "disk_full_error", "folder_size", "sync_folder", "sync_entries",
           "write_manifest", "check_manifest", "MANIFEST", "human_size", "tensor_bytes"]

MANIFEST = "manifest.json"


class InsufficientDiskSpace(OSError):
    """Not enough free space to write something whole; nothing was (left) half-written."""


def human_size(n: float) -> str:
    """``1536`` -> ``'1.5 KB'``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def require_free_space(folder: str | os.PathLike, needed: int, what: str, *, intact: str = "") -> None:
    """Raise :class:`InsufficientDiskSpace` (one line: the folder, what needs the space, how
    much, how much is free) unless ``folder``'s filesystem has ``needed`` bytes free and 5 %
    more. ``intact`` says what is left untouched, for the message."""
    free = shutil.disk_usage(_existing(Path(folder))).free
    if free < needed * 1.05:
        raise InsufficientDiskSpace(
            f"not enough free space in {folder} for {what}: about {human_size(needed)} needed, {human_size(free)} free"
            + (f"; {intact} is intact" if intact else "") + " (free some space, or point --output-dir elsewhere)")


def is_disk_full(error: BaseException) -> bool:
    """Whether an error from a write is a full disk (or a quota), whatever library raised it."""
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error)


def disk_full_error(error: BaseException, folder, what: str, needed: int, *, intact: str = "") -> InsufficientDiskSpace | None:
    """The one-line :class:`InsufficientDiskSpace` for a write of ``what`` into ``folder`` that
    failed because the disk filled up (None when ``error`` is something else)."""
    if not is_disk_full(error):
        return None
    return InsufficientDiskSpace(f"the disk of {folder} filled up while writing {what} (about {human_size(needed)} needed)"
                                 + (f"; {intact} is intact" if intact else ""))


def tensor_bytes(tensors) -> int:
    """Bytes of the tensors' data: about what writing them takes."""
    return sum(t.numel() * t.element_size() for t in tensors)


def folder_size(folder: str | os.PathLike) -> int:
    """Bytes of the files under ``folder`` (0 if it does not exist)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: str | os.PathLike) -> None:
    """Flush every file under ``folder``, then the folders themselves, to disk."""
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            _fsync(path)
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        _fsync(path)
    _fsync(folder)


def sync_entries(folder: str | os.PathLike) -> None:
    """Flush ``folder``'s own entries (a rename into it) to disk."""
    _fsync(Path(folder))


def _crc32(path: Path) -> str:
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def write_manifest(folder: str | os.PathLike) -> Path:
    """List every file under ``folder`` (size, CRC-32) in ``folder/manifest.json``, flushed."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "crc32": _crc32(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    path = folder / MANIFEST
    with open(path, "w") as f:
        json.dump({"files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    return path


def check_manifest(folder: str | os.PathLike) -> str | None:
    """None when every file the manifest lists is there with its size and checksum; else what
    is wrong, in a few words."""
    folder = Path(folder)
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return f"no {MANIFEST} (incomplete, or written before manifests)"
    except (ValueError, KeyError, TypeError):
        return f"unreadable {MANIFEST}"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["size"]:
            return f"{name} has {size} bytes, its manifest says {expected['size']}"
        if _crc32(path) != expected["crc32"]:
            return f"{name} does not match its checksum"
    return None
