"""The one table of data sources: each kind of data spec, and what it can do.

A spec is ``kind`` or ``kind:argument`` (``scenes``, ``coco:/data/coco``, ``hf:org/name``,
``folder:/photos``, ``wds:/shards``). Each kind says, in one entry, how to check its
argument without loading anything, and how to read it for each use: ``load`` (a map-style
``datasets.Dataset`` for pretraining and probes), ``stream`` (shards read in order, for
data beyond one disk), ``detection`` (boxes, for detection transfer) and ``segmentation``
(per-pixel class maps, for segmentation transfer). A kind that
cannot serve a use leaves it ``None`` and gets a clear error there. Adding a source is its
own file plus one entry here.

Example:
    >>> source, arg = parse_spec("hf:detection-datasets/coco?streaming=1")
    >>> source.kind, arg, source.streamed(arg), SOURCES["folder"].detection is None
    ('hf', 'detection-datasets/coco?streaming=1', True, True)
    >>> parse_spec("imagenet")
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset spec 'imagenet'; expected one of: scenes, coco:<path>, ...
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

import datasets

from .ade20k import ade20k_segmentation, check_ade20k
from .cityscapes import check_cityscapes, cityscapes_segmentation
from .classification import check_torchvision, load_cub, load_indoor67, load_torchvision, torchvision_splits
from .coco import coco_ground_truth, load_coco
from .folder import load_folder
from .hub import hub_ground_truth, load_hf
from .scenes import GENERATOR_VERSION, make_scenes
from .schema import GroundTruth, cache_root
from .stream import StreamSource, hub_stream_source, tar_source
from .semantic import SegmentationSet, semantic_from_instances
from .voc import load_voc, voc_folders, voc_ground_truth, voc_segmentation

__all__ = ["DataSource", "SOURCES", "parse_spec", "spec_usage", "default_splits", "default_scenes_dir"]


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One kind of data spec.

    Attributes:
        kind: the part before ``:``.
        usage: how the spec is written, for errors and ``--help`` (``coco:<path>``).
        check: ``check(arg)`` raises (naming the spec) when the argument cannot load; no loading.
        load: ``load(arg, split, drop_unlabeled)`` -> ``datasets.Dataset`` with the columns
            of :func:`~scene_ssl.data.schema.features_for`.
        stream: ``stream(arg, split)`` -> :class:`~scene_ssl.data.stream.StreamSource`.
        detection: ``detection(arg, split, **options)`` -> :class:`~scene_ssl.data.schema.GroundTruth`.
        segmentation: ``segmentation(arg, split)`` -> :class:`~scene_ssl.data.semantic.SegmentationSet`
            (per-pixel class maps, for segmentation transfer; its splits are train / val).
        streamed: ``streamed(arg)``: whether this spec is read as a stream (``stream``) rather
            than loaded (``load``).
        splits: the default (train, evaluation) splits of probes, fine-tuning and detection,
            or ``splits(arg)`` giving them when they depend on the argument.
    """

    kind: str
    usage: str
    check: Callable[[str], None]
    load: Callable[[str, str, bool], datasets.Dataset] | None = None
    stream: Callable[[str, str], StreamSource] | None = None
    detection: Callable[..., GroundTruth] | None = None
    segmentation: Callable[[str, str], SegmentationSet] | None = None
    streamed: Callable[[str], bool] = lambda arg: False
    splits: tuple[str, str] | Callable[[str], tuple[str, str]] = ("train", "val")


def default_scenes_dir() -> str:
    """Where the embedded scene set is generated (once) and cached."""
    return str(cache_root() / f"scenes-v{GENERATOR_VERSION}")


def hub_arg(arg: str) -> tuple[str, bool]:
    """``org/name?streaming=1`` -> (``org/name``, True)."""
    repo, _, query = arg.partition("?")
    options = parse_qs(query)
    unknown = set(options) - {"streaming"}
    if unknown:
        raise ValueError(f"unknown hf: option(s) {sorted(unknown)}; the one option is ?streaming=1")
    return repo, options.get("streaming", ["0"])[-1].lower() in ("1", "true", "yes")


def _folder_check(label: str, kind: str) -> Callable[[str], None]:
    def check(arg: str) -> None:
        path = Path(arg).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{label} not found: {path} (data spec '{kind}:{arg}')")
    return check


def _check_scenes(arg: str) -> None:
    if arg:
        raise ValueError(f"the embedded scenes take no argument (data spec 'scenes:{arg}'); write 'scenes'")


def _check_hf(arg: str) -> None:
    location = hub_arg(arg)[0]
    if location.startswith((".", "/", "~")) and not Path(location).expanduser().is_dir():  # else a Hub repo id
        raise FileNotFoundError(f"dataset folder not found: {Path(location).expanduser()} (data spec 'hf:{arg}')")


def _check_wds(arg: str) -> None:
    if "://" not in arg and "{" not in arg and not Path(arg).expanduser().exists():
        raise FileNotFoundError(f"shards not found: {arg} (data spec 'wds:{arg}')")


def _scenes_root() -> Path:
    return make_scenes(default_scenes_dir())


def _load_hf(arg: str, split: str, drop_unlabeled: bool) -> datasets.Dataset:
    return load_hf(hub_arg(arg)[0], split, drop_unlabeled=drop_unlabeled)


SOURCES: dict[str, DataSource] = {s.kind: s for s in (
    DataSource("scenes", "scenes", _check_scenes,
               load=lambda arg, split, drop: load_coco(_scenes_root(), split, drop_unlabeled=drop),
               detection=lambda arg, split, **options: coco_ground_truth(_scenes_root(), split),
               segmentation=lambda arg, split: semantic_from_instances(coco_ground_truth(_scenes_root(), split))),
    DataSource("coco", "coco:<path>", _folder_check("COCO folder", "coco"),
               load=lambda arg, split, drop: load_coco(arg, split, drop_unlabeled=drop),
               detection=lambda arg, split, **options: coco_ground_truth(Path(arg).expanduser(), split),
               segmentation=lambda arg, split: semantic_from_instances(coco_ground_truth(Path(arg).expanduser(), split))),
    DataSource("hf", "hf:<repo id or folder>[?streaming=1]", _check_hf, load=_load_hf,
               stream=lambda arg, split: hub_stream_source(hub_arg(arg)[0], split),
               detection=lambda arg, split, **options: hub_ground_truth(hub_arg(arg)[0], split, **options),
               streamed=lambda arg: hub_arg(arg)[1]),
    DataSource("folder", "folder:<path>", _folder_check("image folder", "folder"),
               load=lambda arg, split, drop: load_folder(arg, split, drop_unlabeled=drop)),
    DataSource("wds", "wds:<shards>", _check_wds, stream=lambda arg, split: tar_source(arg), streamed=lambda arg: True),
    DataSource("voc", "voc:<VOCdevkit>[?years=2007,2012]", lambda arg: voc_folders(arg) and None,
               load=lambda arg, split, drop: load_voc(arg, split, drop_unlabeled=drop), detection=voc_ground_truth,
               segmentation=voc_segmentation, splits=("trainval", "test")),
    DataSource("torchvision", "torchvision:<...>:<root>",  # <...>: a name of classification.TORCHVISION_SETS
               check_torchvision, load=lambda arg, split, drop: load_torchvision(arg, split), splits=torchvision_splits),
    DataSource("cub", "cub:<CUB_200_2011>", _folder_check("CUB_200_2011 folder", "cub"),
               load=lambda arg, split, drop: load_cub(arg, split), splits=("train", "test")),
    DataSource("indoor67", "indoor67:<path>", _folder_check("Indoor-67 folder", "indoor67"),
               load=lambda arg, split, drop: load_indoor67(arg, split), splits=("train", "test")),
    DataSource("cityscapes", "cityscapes:<path>", check_cityscapes, segmentation=cityscapes_segmentation),
    DataSource("ade20k", "ade20k:<ADEChallengeData2016>", check_ade20k, segmentation=ade20k_segmentation),
)}


def spec_usage(sep: str = ", ", *, can: str | None = None) -> str:
    """The spec kinds as users write them (those that can ``load`` / ``stream`` / do ``detection``
    when ``can`` says which), for errors and ``--help``."""
    return sep.join(s.usage for s in SOURCES.values() if can is None or getattr(s, can) is not None)


def default_splits(spec: str, train: str | None = None, val: str | None = None) -> tuple[str, str]:
    """The (train, evaluation) splits a probe or a detector uses on ``spec``: ``train`` / ``val``
    as given, else the source's defaults: ``train`` / ``val``, VOC's ``trainval`` / ``test`` (by
    the spec's kind; nothing is checked)."""
    kind, _, arg = str(spec).partition(":")
    source = SOURCES.get(kind)
    default = ("train", "val") if source is None else source.splits(arg) if callable(source.splits) else source.splits
    return train or default[0], val or default[1]


def parse_spec(spec: Any) -> tuple[DataSource, str]:
    """``(source, argument)`` of a spec, its argument checked (nothing is loaded)."""
    if not isinstance(spec, str):
        raise ValueError(f"dataset spec must be a string, got {type(spec).__name__}")
    kind, colon, arg = spec.partition(":")
    source = SOURCES.get(kind)
    if source is None:
        raise ValueError(f"unknown dataset spec {spec!r}; expected one of: {spec_usage()}")
    if not arg and (colon or kind != "scenes"):
        raise ValueError(f"dataset spec {spec!r} needs a path or repo after '{kind}:'")
    source.check(arg)
    return source, arg
