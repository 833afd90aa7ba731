"""``voc:`` data: PASCAL VOC folders (``VOCdevkit/VOC2007``, ``VOC2012``) for pretraining,
multi-label probes, detection and semantic segmentation.

``voc:/path/to/VOCdevkit`` takes every ``VOC<year>`` folder there (``?years=2007`` or
``?years=2007,2012`` picks some); a folder that itself holds ``Annotations/`` and
``ImageSets/Main/`` is one year. A split is an ``ImageSets/Main/<split>.txt`` name
(``trainval``, ``train``, ``val``, ``test``), taken from every chosen year that has it: so
``voc:/p`` with splits ``trainval`` -> ``test`` is the papers' VOC07+12 -> VOC07 detection
setting, and ``voc:/p?years=2007`` the VOC07 classification one.

Labels follow the VOC devkit: a class is positive for an image with a non-*difficult*
object of it, *ignored* when the image has only difficult ones (``ignore`` column, 1.0;
the classification protocol leaves those out of training and of the AP), negative
otherwise. Detection keeps every box with its ``difficult`` flag (Detectron2 trains on
difficult boxes; its VOC metric ignores them). Boxes follow Detectron2's loader: the 1-based
inclusive pixel box (xmin, ymin, xmax, ymax) becomes the float box (xmin - 1, ymin - 1,
xmax, ymax). Classes are the 20 VOC ones; a folder whose XMLs name others (many detection
sets ship VOC XML) takes its classes from the annotations, sorted, and says so.
"""
from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs

import datasets

from .schema import GroundTruth, dataset_from_columns, features_for, fingerprint_of, multi_hot
from .semantic import SegmentationSet, PngLabels, identity_table, missing_file

__all__ = ["VOC_CLASSES", "parse_voc_xml", "voc_folders", "load_voc", "voc_ground_truth", "voc_arg", "voc_segmentation"]

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
               "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def voc_arg(arg: str) -> tuple[Path, list[str] | None]:
    """``/p?years=2007,2012`` -> (``/p``, ``["2007", "2012"]``); no ``?years``: None (all)."""
    location, _, query = arg.partition("?")
    options = parse_qs(query)
    unknown = set(options) - {"years"}
    if unknown:
        raise ValueError(f"unknown voc: option(s) {sorted(unknown)}; the one option is ?years=2007,2012")
    years = [y.strip() for y in ",".join(options["years"]).split(",") if y.strip()] if "years" in options else None
    return Path(location).expanduser(), years


def _is_year_folder(path: Path) -> bool:
    return (path / "Annotations").is_dir() and (path / "ImageSets" / "Main").is_dir()


def voc_folders(arg: str) -> dict[str, Path]:
    """The chosen years' folders, ``{"2007": .../VOC2007, ...}``; errors name what is missing."""
    root, years = voc_arg(arg)
    if not root.is_dir():
        raise FileNotFoundError(f"VOC folder not found: {root} (data spec 'voc:{arg}')")
    if _is_year_folder(root):
        found = {root.name.removeprefix("VOC") or root.name: root}
    else:
        found = {p.name.removeprefix("VOC"): p for p in sorted(root.glob("VOC*")) if _is_year_folder(p)}
    if not found:
        raise FileNotFoundError(f"no VOC<year> folder with Annotations/ and ImageSets/Main/ in {root} (data spec 'voc:{arg}')")
    if years is None:
        return found
    missing = [y for y in years if y not in found]
    if missing:
        raise FileNotFoundError(f"voc:{arg}: no VOC{missing[0]} folder in {root} (found: {', '.join(found)})")
    return {y: found[y] for y in years}


def parse_voc_xml(path: str | os.PathLike) -> dict:
    """One VOC annotation file -> ``{"filename", "width", "height", "objects": [{"name",
    "bbox": (xmin, ymin, xmax, ymax) as in the file or None without one, "difficult": bool,
    "truncated": bool}]}``. An object without a ``<bndbox>`` still names a class present in
    the image (its label counts); detection drops it, counted with every other unusable box
    (:func:`~scene_ssl.data.annotations.checked`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation file not found: {path}")
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        objects = []
        for obj in root.findall("object"):
            box = obj.find("bndbox")
            objects.append({"name": obj.findtext("name").strip(),
                            "bbox": None if box is None else
                            tuple(int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")),
                            "difficult": obj.findtext("difficult", "0").strip() == "1",
                            "truncated": obj.findtext("truncated", "0").strip() == "1"})
        return {"filename": root.findtext("filename").strip(), "width": int(size.findtext("width")),
                "height": int(size.findtext("height")), "objects": objects}
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"unreadable VOC annotation file {path}: {e}") from None


def _records(arg: str, split: str) -> list[tuple[str, Path, dict]]:
    """``(year, image path, parsed XML)`` of every image of ``split`` in the chosen years."""
    folders = voc_folders(arg)
    lists = {y: f / "ImageSets" / "Main" / f"{split}.txt" for y, f in folders.items()}
    present = {y: p for y, p in lists.items() if p.is_file()}
    if not present:
        raise ValueError(f"voc:{arg} has no split {split!r} (no ImageSets/Main/{split}.txt in VOC{', VOC'.join(folders)})")
    records = []
    for year, listing in present.items():
        folder = folders[year]
        for image_id in listing.read_text().split():
            ann = parse_voc_xml(folder / "Annotations" / f"{image_id}.xml")
            records.append((year, folder / "JPEGImages" / ann["filename"], ann))
    return records


def _classes(records: list, arg: str) -> list[str]:
    names = sorted({o["name"] for _, _, ann in records for o in ann["objects"]})
    if set(names) <= set(VOC_CLASSES):
        return list(VOC_CLASSES)
    print(f"voc:{arg}: the annotations name classes beyond VOC's 20; using theirs ({len(names)}: "
          f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''})", file=sys.stderr)
    return names


def load_voc(arg: str, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """The images of ``split`` with ``labels`` (classes with a non-difficult object),
    ``multi_hot`` and ``ignore`` (1.0 for classes present only as difficult)."""
    records = _records(arg, split)
    names = _classes(records, arg)
    index = {n: i for i, n in enumerate(names)}
    columns: dict[str, list] = {"image": [], "image_id": [], "labels": [], "multi_hot": [], "ignore": []}
    for i, (_, image, ann) in enumerate(records):
        positive = sorted({index[o["name"]] for o in ann["objects"] if not o["difficult"]})
        only_difficult = sorted({index[o["name"]] for o in ann["objects"]} - set(positive))
        if drop_unlabeled and not positive:
            continue
        columns["image"].append(str(image))
        columns["image_id"].append(i)
        columns["labels"].append(positive)
        columns["multi_hot"].append(multi_hot(positive, len(names)))
        columns["ignore"].append(multi_hot(only_difficult, len(names)))
    features = datasets.Features({**features_for(names), "ignore": datasets.Sequence(datasets.Value("float32"))})
    return dataset_from_columns(columns, features, fingerprint_of("voc-v1", arg, split, drop_unlabeled, len(records)))


def voc_ground_truth(arg: str, split: str, **options) -> GroundTruth:
    """Every box of ``split`` (difficult ones flagged) as COCO-format ground truth."""
    records = _records(arg, split)
    names = _classes(records, arg)
    index = {n: i + 1 for i, n in enumerate(names)}
    images, annotations, sources = [], [], {}
    for image_id, (_, image, ann) in enumerate(records):
        images.append({"id": image_id, "width": ann["width"], "height": ann["height"], "file_name": str(image)})
        sources[image_id] = str(image)
        for obj in ann["objects"]:
            box = None
            if obj["bbox"] is not None:
                x0, y0, x1, y1 = obj["bbox"]
                box = [x0 - 1.0, y0 - 1.0, float(x1 - x0 + 1), float(y1 - y0 + 1)]  # Detectron2's float box, as xywh
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": index[obj["name"]],
                                "bbox": box, "area": box[2] * box[3] if box else 0.0, "iscrowd": 0,
                                "difficult": int(obj["difficult"])})
    categories = [{"id": i, "name": n} for n, i in index.items()]
    years = sorted({year for year, _, _ in records})
    return GroundTruth({"images": images, "annotations": annotations, "categories": categories}, sources, f"voc:{arg}",
                       metric="voc", voc07=years == ["2007"])


def voc_segmentation(arg: str, split: str) -> SegmentationSet:
    """The images of ``ImageSets/Segmentation/<split>.txt`` of the chosen years with their
    ``SegmentationClass`` PNGs (21 classes: background + VOC's 20; 255 on object borders,
    ignored). For ``train``, a year with ``ImageSets/Segmentation/aug.txt`` and
    ``SegmentationClassAug/`` (SBD's extra labels, as mmseg's VOC "aug" converter writes them)
    adds those images too: DenseCL's / mmseg's ``voc12aug`` training set."""
    folders, spec = voc_folders(arg), f"voc:{arg}"
    images, labels = [], []
    for year, folder in folders.items():
        sets = folder / "ImageSets" / "Segmentation"
        listed = [(sets / f"{split}.txt", "SegmentationClass")]
        if split == "train" and (sets / "aug.txt").is_file() and (folder / "SegmentationClassAug").is_dir():
            listed.append((sets / "aug.txt", "SegmentationClassAug"))
        for listing, label_folder in listed:
            if not listing.is_file():
                continue
            for image_id in listing.read_text().split():
                label = folder / label_folder / f"{image_id}.png"
                if not label.is_file():
                    raise missing_file(label, "label file", spec)
                images.append(str(folder / "JPEGImages" / f"{image_id}.jpg"))
                labels.append(str(label))
    if not images:
        raise ValueError(f"{spec} has no segmentation split {split!r} (no ImageSets/Segmentation/{split}.txt "
                         f"in VOC{', VOC'.join(folders)})")
    return SegmentationSet(images, PngLabels(labels, identity_table()), ["background", *VOC_CLASSES], spec)
