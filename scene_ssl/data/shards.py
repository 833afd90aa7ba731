"""Webdataset-style tar shards: write them from any data spec, list and read them anywhere.

A shard is a plain tar file whose members come in groups named ``<key>.<ext>``: the image
as it was on disk (``<key>.jpg`` / ``.png`` ...) and ``<key>.json`` with its ``image_id``
and ``labels`` (class indices). ``index.json`` beside the shards lists each shard's sample
count and the class names, so that readers know the epoch length without a pass over the
data. Shards are read sequentially (local paths, or any URL fsspec opens), never extracted.

    python -m scene_ssl.data.shards --data coco:/data/coco --split train --output-dir /data/shards/coco-train --shard-size 1000
    accelerate launch recipes/pretrain_mls.py --data wds:/data/shards/coco-train
    accelerate launch recipes/pretrain_mls.py --data "wds:https://host/coco-train-{000000..000118}.tar"
"""
from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from ..config import add_bool_flag, add_output_dir, parse_tool_args, user_errors
from .decode import read_bytes
from .load import load_dataset
from .schema import class_names
from .shard_reader import INDEX_NAME

__all__ = ["write_shards", "main"]


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


def _old_shards(out: Path) -> list[Path]:
    """What an earlier conversion left in ``out``: shards, half-written ones, the index."""
    return sorted([*out.glob("*.tar"), *out.glob("*.tar.tmp"), *out.glob(INDEX_NAME)]) if out.is_dir() else []


def write_shards(spec: str, split: str, out: str | os.PathLike, *, shard_size: int = 1000, prefix: str | None = None,
                 progress: bool = True, overwrite: bool = False) -> list[Path]:
    """Write ``split`` of any data spec as tar shards of ``shard_size`` samples into ``out``,
    with ``index.json``; return the shard paths. Images keep their bytes; labels travel in
    ``<key>.json``. Written to temporary names and renamed, so a half-written shard never
    looks complete. A folder that holds shards already is refused unless ``overwrite``, which
    removes them first (stale shards would otherwise be read beside the new ones)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out)
    old = _old_shards(out)
    if old and not overwrite:
        raise ValueError(f"{out} already holds {len(old)} shard file(s) (e.g. {old[0].name}): choose an empty folder, "
                         "or --overwrite to replace them")
    data = load_dataset(spec, split)
    names = class_names(data)
    raw = data.cast_column("image", datasets.Image(decode=False))
    for path in old:
        path.unlink()
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
    add_output_dir(ap, None, "folder for the shards and index.json", old="--out")
    ap.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    add_bool_flag(ap, "--overwrite", False, "replace the shards a folder holds already")
    args = parse_tool_args(ap, argv)
    with user_errors():
        shards = write_shards(args.data, args.split, args.output_dir, shard_size=args.shard_size, overwrite=args.overwrite)
    print(f"wrote {len(shards)} shards to {args.output_dir}; train on them with --data wds:{args.output_dir}")
    return shards


if __name__ == "__main__":
    main()
