"""The single-label classification sets of the fine-tuning protocols (MLS Table 5, Ericsson et
al.), read from a local copy of their official layout with their official splits; nothing is
downloaded.

- ``torchvision:<Name>:/root``: the sets torchvision reads from a local root, through its own
  readers (so the splits are torchvision's): ``Flowers102`` (train / val / test), ``DTD``
  (train / val / test, ``?partition=1..10``), ``OxfordIIITPet`` (trainval / test),
  ``StanfordCars`` (train / test), ``FGVCAircraft`` (train / val / trainval / test, variants);
- ``cub:/CUB_200_2011``: ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``
  (train / test) and ``classes.txt``;
- ``indoor67:/path``: ``TrainImages.txt`` / ``TestImages.txt`` (train / test) listing
  ``<category>/<file>`` under ``Images/``.

Each is one entry of :data:`scene_ssl.data.sources.SOURCES`; a missing file is one line
naming it. Images are listed, not opened: an unreadable one is skipped where it is decoded.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

import datasets

from .schema import dataset_from_columns, features_for, fingerprint_of, multi_hot

__all__ = ["TORCHVISION_SETS", "load_torchvision", "check_torchvision", "load_cub", "load_indoor67", "torchvision_splits"]

#: torchvision's local readers: name -> (splits, (default train, default evaluation split))
TORCHVISION_SETS = {
    "Flowers102": (("train", "val", "test"), ("train", "test")),
    "DTD": (("train", "val", "test"), ("train", "test")),
    "OxfordIIITPet": (("trainval", "test"), ("trainval", "test")),
    "StanfordCars": (("train", "test"), ("train", "test")),
    "FGVCAircraft": (("train", "val", "trainval", "test"), ("trainval", "test")),
}


def _single_label(paths: list[str], labels: list[int], names: list[str], key: str) -> datasets.Dataset:
    return dataset_from_columns({"image": paths, "image_id": list(range(len(paths))), "labels": [[c] for c in labels],
                                 "multi_hot": [multi_hot([c], len(names)) for c in labels]},
                                features_for(names), fingerprint=fingerprint_of(key, len(paths), *paths[:3]))


def _parse_torchvision(arg: str) -> tuple[str, Path, dict[str, str]]:
    name, _, rest = arg.partition(":")
    root, _, query = rest.partition("?")
    if name not in TORCHVISION_SETS:
        raise ValueError(f"torchvision:{arg}: unknown set {name!r}; expected one of {', '.join(TORCHVISION_SETS)}")
    if not root:
        raise ValueError(f"torchvision:{arg}: write torchvision:{name}:/path/to/its/root")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(options) - {"partition"}
    if unknown or (options and name != "DTD"):
        raise ValueError(f"torchvision:{arg}: unknown option(s) {sorted(unknown or options)} (DTD takes ?partition=1..10)")
    return name, Path(root).expanduser(), options


def check_torchvision(arg: str) -> None:
    name, root, _ = _parse_torchvision(arg)
    if not root.is_dir():
        raise FileNotFoundError(f"{name} root not found: {root} (data spec 'torchvision:{arg}')")


def torchvision_splits(arg: str) -> tuple[str, str]:
    """The default (train, evaluation) splits of a ``torchvision:`` spec."""
    return TORCHVISION_SETS[arg.partition(":")[0]][1]


def load_torchvision(arg: str, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """One split of a torchvision set on local disk, as our columns (single labels)."""
    import torchvision

    name, root, options = _parse_torchvision(arg)
    splits = TORCHVISION_SETS[name][0]
    if split not in splits:
        raise ValueError(f"torchvision:{arg} has no split {split!r}; expected one of {splits}")
    cls = getattr(torchvision.datasets, name)
    kwargs = {"split": split, "download": False}
    if name == "DTD":
        kwargs["partition"] = int(options.get("partition", 1))
    if name == "FGVCAircraft":
        kwargs["annotation_level"] = "variant"
    try:
        ds = cls(str(root), **kwargs)
    except RuntimeError as e:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f"torchvision:{arg}: {name} is not complete under {root} ({e})") from None
    if hasattr(ds, "_samples"):
        paths, labels = [str(p) for p, _ in ds._samples], [int(c) for _, c in ds._samples]
    else:
        paths = [str(p) for p in getattr(ds, "_image_files", None) or ds._images]
        labels = [int(c) for c in ds._labels]
    names = [str(c) for c in getattr(ds, "classes", None) or range(max(labels) + 1)]
    return _single_label(paths, labels, names, f"torchvision-{name}-{root}-{split}-{sorted(options.items())}")


def _table(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found: {path}")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def load_cub(root: str | os.PathLike, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """CUB-200-2011's official train (5,994) / test (5,794) split, 200 classes."""
    root = Path(root).expanduser()
    if split not in ("train", "test"):
        raise ValueError(f"cub:{root} has no split {split!r}; expected train or test")
    images = {i: p for i, p in _table(root / "images.txt")}
    labels = {i: int(c) - 1 for i, c in _table(root / "image_class_labels.txt")}
    is_train = {i: flag == "1" for i, flag in _table(root / "train_test_split.txt")}
    names = [" ".join(rest) for _, *rest in _table(root / "classes.txt")]
    ids = [i for i in images if is_train[i] == (split == "train")]
    return _single_label([str(root / "images" / images[i]) for i in ids], [labels[i] for i in ids], names,
                         f"cub-{root}-{split}")


def load_indoor67(root: str | os.PathLike, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """MIT Indoor-67's official train (5,360) / test (1,340) lists, 67 classes."""
    root = Path(root).expanduser()
    if split not in ("train", "test"):
        raise ValueError(f"indoor67:{root} has no split {split!r}; expected train or test")
    listed = [row[0] for row in _table(root / f"{split.capitalize()}Images.txt")]
    names = sorted({entry.split("/")[0] for split_ in ("Train", "Test")
                    for entry in (r[0] for r in _table(root / f"{split_}Images.txt"))})
    index = {n: i for i, n in enumerate(names)}
    return _single_label([str(root / "Images" / entry) for entry in listed], [index[e.split("/")[0]] for e in listed],
                         names, f"indoor67-{root}-{split}")
