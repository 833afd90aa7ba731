"""One entry point for every data source: ``load_dataset(spec, split)``."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import datasets

from .coco import load_coco
from .folder import load_folder
from .hub import load_hf
from .scenes import GENERATOR_VERSION, make_scenes
from .schema import cache_root

__all__ = ["load_dataset", "load_stream", "is_stream", "check_spec", "SPEC_KINDS", "default_scenes_dir"]

SPEC_KINDS = ("scenes", "coco:<path>", "hf:<repo id or folder>[?streaming=1]", "folder:<path>", "wds:<shards>")


def _hub_arg(arg: str) -> tuple[str, bool]:
    """``org/name?streaming=1`` -> (``org/name``, True)."""
    repo, _, query = arg.partition("?")
    options = parse_qs(query)
    unknown = set(options) - {"streaming"}
    if unknown:
        raise ValueError(f"unknown hf: option(s) {sorted(unknown)}; the one option is ?streaming=1")
    return repo, options.get("streaming", ["0"])[-1].lower() in ("1", "true", "yes")


def is_stream(spec: str) -> bool:
    """Whether a spec is read as a stream of shards (``wds:``, ``hf:...?streaming=1``)."""
    kind, _, arg = spec.partition(":")
    return kind == "wds" or (kind == "hf" and _hub_arg(arg)[1])


def default_scenes_dir() -> str:
    """Where the embedded scene set is generated (once) and cached."""
    return str(cache_root() / f"scenes-v{GENERATOR_VERSION}")


def check_spec(spec: str) -> str:
    """Refuse a data spec that cannot load, without loading it: an unknown kind, a missing
    path after ``coco:`` / ``folder:``, a local ``hf:`` folder that does not exist.

    Example:
        >>> check_spec("scenes")
        'scenes'
        >>> check_spec("coco:/nope")
        Traceback (most recent call last):
        ...
        FileNotFoundError: COCO folder not found: /nope (data spec 'coco:/nope')
    """
    if not isinstance(spec, str):
        raise ValueError(f"dataset spec must be a string, got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    if kind == "scenes" and not arg:
        return spec
    if kind not in ("coco", "hf", "folder", "wds"):
        raise ValueError(f"unknown dataset spec {spec!r}; expected one of: {', '.join(SPEC_KINDS)}")
    if not arg:
        raise ValueError(f"dataset spec {spec!r} needs a path or repo after '{kind}:'")
    if kind == "wds":
        if "://" not in arg and "{" not in arg and not Path(arg).expanduser().exists():
            raise FileNotFoundError(f"shards not found: {arg} (data spec {spec!r})")
        return spec
    location = _hub_arg(arg)[0] if kind == "hf" else arg
    path = Path(location).expanduser()
    looks_local = kind != "hf" or location.startswith((".", "/", "~"))  # hf: may name a Hub repo
    if looks_local and not path.is_dir():
        label = {"coco": "COCO folder", "folder": "image folder", "hf": "dataset folder"}[kind]
        raise FileNotFoundError(f"{label} not found: {path} (data spec {spec!r})")
    return spec


def load_stream(spec: str, split: str = "train"):
    """The shards of a streamed spec as a :class:`~scene_ssl.data.stream.StreamSource`."""
    from .stream import hub_stream_source, tar_source

    check_spec(spec)
    kind, _, arg = spec.partition(":")
    if kind == "wds":
        return tar_source(arg)
    if kind == "hf" and _hub_arg(arg)[1]:
        return hub_stream_source(_hub_arg(arg)[0], split)
    raise ValueError(f"{spec} is not streamed: use load_dataset (wds: and hf:...?streaming=1 are)")


def load_dataset(spec: str, split: str = "train", *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """Load a dataset with columns ``image``, ``image_id``, ``labels``, ``multi_hot``.

    Args:
        spec: ``scenes`` (the embedded synthetic scene set, generated on first use),
            ``coco:/path/to/coco``, ``hf:<repo id>`` (e.g. ``hf:detection-datasets/coco``),
            or ``folder:/path`` (any images; class subfolders give single labels).
        split: ``train`` / ``val`` (COCO-format sources); any split the Hub dataset has.
        drop_unlabeled: drop images without any label (for probes; SSL keeps them).

    Example:
        >>> load_dataset("imagenet")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset spec 'imagenet'; expected one of: scenes, coco:<path>, hf:<repo id or folder>[?streaming=1], folder:<path>, wds:<shards>
    """
    check_spec(spec)
    if is_stream(spec):
        raise ValueError(f"{spec} is streamed, for pretraining; probes and evaluation need a map-style spec "
                         "(scenes, coco:, hf: without ?streaming=1, folder:)")
    kind, _, arg = spec.partition(":")
    if kind == "scenes":
        return load_coco(make_scenes(default_scenes_dir()), split, drop_unlabeled=drop_unlabeled)
    if kind == "coco":
        return load_coco(arg, split, drop_unlabeled=drop_unlabeled)
    if kind == "hf":
        return load_hf(arg, split, drop_unlabeled=drop_unlabeled)
    return load_folder(arg, split, drop_unlabeled=drop_unlabeled)
