"""Reading webdataset-style tar shards, local or at any URL fsspec opens: list them, read
their ``index.json``, iterate their samples in order (never extracted). The format is
described in :mod:`scene_ssl.data.shards`, which writes them.
"""
from __future__ import annotations

import json
import re
import tarfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import fsspec

__all__ = ["expand_braces", "shard_urls", "read_index", "iterate_shard", "count_shard", "INDEX_NAME", "DAMAGED_SHARD"]

#: what a damaged shard raises while it is read (a truncated tar, a 0-byte file); an I/O error
#: (a network blip, NFS) is not damage: it ends the run loudly rather than drop samples
DAMAGED_SHARD = (tarfile.TarError, EOFError)

INDEX_NAME = "index.json"
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(pattern: str) -> list[str]:
    """``a-{000..002}.tar`` -> ``[a-000.tar, a-001.tar, a-002.tar]`` (zero padding kept; several
    ranges expand as a product, left to right).

    Example:
        >>> expand_braces("s-{00..02}.tar")
        ['s-00.tar', 's-01.tar', 's-02.tar']
    """
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    lo, hi = match.group(1), match.group(2)
    width = len(lo)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [u for i in range(int(lo), int(hi) + 1) for u in expand_braces(f"{head}{i:0{width}d}{tail}")]


def shard_urls(location: str) -> list[str]:
    """The shards a ``wds:`` location names: a brace pattern (local or URL), one tar, or a
    local folder: the shards its ``index.json`` lists (a stray tar beside them is not read),
    else every ``*.tar`` in it, sorted."""
    if "{" in location:
        return expand_braces(location)
    path = Path(location).expanduser()
    if path.is_dir():
        index = path / INDEX_NAME
        if index.is_file():
            listed = [str(path / s["name"]) for s in json.loads(index.read_text()).get("shards", [])]
            missing = [p for p in listed if not Path(p).is_file()]
            if missing:
                raise FileNotFoundError(f"{index} lists {len(missing)} shard(s) that are not there (first: {missing[0]})")
            return listed
        tars = sorted(str(p) for p in path.glob("*.tar"))
        if not tars:
            raise FileNotFoundError(f"no .tar shards in {path}")
        return tars
    if "://" not in location and not path.is_file():
        raise FileNotFoundError(f"shard not found: {location}")
    return [location]


def read_index(urls: list[str]) -> dict[str, Any] | None:
    """The ``index.json`` beside the shards (counts per shard name, class names), or None."""
    base = urls[0].rsplit("/", 1)[0] if "/" in urls[0] else "."
    try:
        with fsspec.open(f"{base}/{INDEX_NAME}", "rt") as f:
            return json.load(f)
    except (FileNotFoundError, OSError):
        return None


def _split_member(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext.lower()


def iterate_shard(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {ext: bytes})`` for every sample of a shard, in the order of the tar."""
    with fsspec.open(url, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
        key, parts = None, {}
        for member in tar:
            if not member.isfile():
                continue
            k, ext = _split_member(member.name)
            if key is not None and k != key:
                yield key, parts
                parts = {}
            key = k
            parts[ext] = tar.extractfile(member).read()
        if key is not None:
            yield key, parts


def count_shard(url: str) -> int:
    """Samples in a shard, from its member names alone (no image is decoded). A damaged shard
    is named in a warning and counts the samples before the damage."""
    keys, last = 0, None
    try:
        with fsspec.open(url, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                if member.isfile():
                    key = _split_member(member.name)[0]
                    keys += key != last
                    last = key
    except DAMAGED_SHARD as e:
        warnings.warn(f"damaged shard {url} ({type(e).__name__}: {e}): only its first {keys} sample(s) are read",
                      stacklevel=2)
    return keys
