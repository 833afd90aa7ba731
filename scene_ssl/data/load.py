"""One entry point for every data source: ``load_dataset(spec, split)`` (and ``load_stream``),
dispatched through the table in :mod:`.sources`."""
from __future__ import annotations

import datasets

from .sources import default_scenes_dir, parse_spec, spec_usage
from .stream import StreamSource

__all__ = ["load_dataset", "load_stream", "is_stream", "check_spec", "default_scenes_dir"]


def is_stream(spec: str) -> bool:
    """Whether a spec is read as a stream of shards (``wds:``, ``hf:...?streaming=1``)."""
    source, arg = parse_spec(spec)
    return source.streamed(arg)


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
    parse_spec(spec)
    return spec


def load_stream(spec: str, split: str = "train") -> StreamSource:
    """The shards of a streamed spec as a :class:`~scene_ssl.data.stream.StreamSource`."""
    source, arg = parse_spec(spec)
    if source.stream is None or not source.streamed(arg):
        raise ValueError(f"{spec} is not streamed: use load_dataset (streamed kinds: {spec_usage(can='stream')})")
    return source.stream(arg, split)


def load_dataset(spec: str, split: str = "train", *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """Load a dataset with columns ``image``, ``image_id``, ``labels``, ``multi_hot``.

    Args:
        spec: ``scenes`` (the embedded synthetic scene set, generated on first use),
            ``coco:/path/to/coco``, ``hf:<repo id>`` (e.g. ``hf:detection-datasets/coco``),
            or ``folder:/path`` (any images; class subfolders give single labels); see
            :data:`scene_ssl.data.sources.SOURCES` for every kind.
        split: ``train`` / ``val`` (COCO-format sources); any split the Hub dataset has.
        drop_unlabeled: drop images without any label (for probes; SSL keeps them).

    Example:
        >>> load_dataset("imagenet")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset spec 'imagenet'; expected one of: scenes, coco:<path>, hf:<repo id or folder>[?streaming=1], folder:<path>, ...
    """
    source, arg = parse_spec(spec)
    if source.streamed(arg) or source.load is None:
        raise ValueError(f"{spec} is streamed, for pretraining; probes and evaluation need a map-style spec "
                         f"({spec_usage(can='load')} without ?streaming=1)")
    return source.load(arg, split, drop_unlabeled)
