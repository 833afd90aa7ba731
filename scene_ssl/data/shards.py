"""Webdataset-style tar shards: write them from any data spec, list and read them anywhere.

A shard is a plain tar file whose members come in groups named ``<key>.<ext>``: the image
as it was on disk (``<key>.jpg`` / ``.png`` ...) and ``<key>.json`` with its ``image_id``
and ``labels`` (class indices). ``index.json`` beside the shards lists each shard's sample
count and the class names, so that readers know the epoch length without a pass over the
data. Shards are read sequentially (local paths, or any URL fsspec opens), never extracted.

    python -m scene_ssl.data.shards --data coco:/data/coco --split train --out /data/shards/coco-train --shard-size 1000
    accelerate launch recipes/pretrain_mls.py --data wds:/data/shards/coco-train
    accelerate launch recipes/pretrain_mls.py --data "wds:https://host/coco-train-{000000..000118}.tar"
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any, Iterator

import fsspec
from tqdm.auto import tqdm

from .decode import read_bytes

__all__ = ["write_shards", "expand_braces", "shard_urls", "read_index", "iterate_shard", "count_shard", "INDEX_NAME"]

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
    local folder (every ``*.tar`` in it, sorted)."""
    if "{" in location:
        return expand_braces(location)
    path = Path(location).expanduser()
    if path.is_dir():
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
    """Samples in a shard, from its member names alone (no image is decoded)."""
    keys, last = 0, None
    with fsspec.open(url, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                key = _split_member(member.name)[0]
                keys += key != last
                last = key
    return keys


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible shards
    tar.addfile(info, io.BytesIO(data))


def _image_bytes(item: Any) -> tuple[bytes, str]:
    """The image as stored (no re-encoding) and its extension."""
    data = read_bytes(item)
    path = (item.get("path") or "") if isinstance(item, dict) else str(item)
    ext = Path(path).suffix.lower().lstrip(".") or ("png" if data[:4] == b"\x89PNG" else "jpg")
    return data, "jpg" if ext == "jpeg" else ext


def write_shards(spec: str, split: str, out: str | os.PathLike, *, shard_size: int = 1000, prefix: str | None = None,
                 progress: bool = True) -> list[Path]:
    """Write ``split`` of any data spec as tar shards of ``shard_size`` samples into ``out``,
    with ``index.json``; return the shard paths. Images keep their bytes; labels travel in
    ``<key>.json``. Written to temporary names and renamed, so a half-written shard never
    looks complete."""
    import datasets

    from .load import load_dataset
    from .schema import class_names

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    data = load_dataset(spec, split)
    names = class_names(data)
    raw = data.cast_column("image", datasets.Image(decode=False))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = prefix or f"{split}"
    shards, counts = [], []
    bar = tqdm(total=len(raw), desc=f"shards of {spec} {split}", disable=not progress)
    for first in range(0, len(raw), shard_size):
        path = out / f"{prefix}-{len(shards):06d}.tar"
        tmp = path.with_suffix(".tar.tmp")
        rows = raw.select(range(first, min(first + shard_size, len(raw))))
        with tarfile.open(tmp, "w") as tar:
            for offset, row in enumerate(rows):
                key = f"{first + offset:09d}"
                image, ext = _image_bytes(row["image"])
                _add(tar, f"{key}.{ext}", image)
                meta = {"image_id": int(row.get("image_id", first + offset)), "labels": list(row.get("labels") or [])}
                _add(tar, f"{key}.json", json.dumps(meta).encode())
                bar.update(1)
        os.replace(tmp, path)
        shards.append(path)
        counts.append(len(rows))
    bar.close()
    index = {"source": spec, "split": split, "class_names": names,
             "shards": [{"name": p.name, "count": c} for p, c in zip(shards, counts)]}
    (out / INDEX_NAME).write_text(json.dumps(index, indent=1))
    return shards


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="any data spec: scenes | coco:/path | hf:<repo or folder> | folder:/path")
    ap.add_argument("--split", default="train")
    ap.add_argument("--out", required=True, help="folder for the shards and index.json")
    ap.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    args = ap.parse_args(argv)
    from ..cli import user_errors

    with user_errors():
        shards = write_shards(args.data, args.split, args.out, shard_size=args.shard_size)
    print(f"wrote {len(shards)} shards to {args.out}; train on them with --data wds:{args.out}")
    return shards


if __name__ == "__main__":
    main()
