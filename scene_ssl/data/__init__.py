"""Data sources (the embedded scenes, COCO via pycocotools, VOC, HF datasets, image folders, tar shards; one table in
``sources.py``) and loaders."""
from .decode import DecodeError, decode_image
from .load import check_spec, default_scenes_dir, is_stream, load_dataset, load_stream
from .sources import SOURCES, DataSource, parse_spec, spec_usage
from .sampler import EpochShuffleSampler, seeded_generator
from .scenes import SCENE_CLASSES, make_scenes
from .schema import class_names, num_classes
from .views import ViewDataset, collate_decoded, collate_encoded, collate_views
from .workers import available_cpus, init_worker, worker_count

__all__ = [
    "load_dataset",
    "check_spec",
    "load_stream",
    "SOURCES",
    "DataSource",
    "parse_spec",
    "spec_usage",
    "is_stream",
    "make_scenes",
    "default_scenes_dir",
    "SCENE_CLASSES",
    "class_names",
    "num_classes",
    "decode_image",
    "DecodeError",
    "ViewDataset",
    "EpochShuffleSampler",
    "seeded_generator",
    "collate_views",
    "collate_decoded",
    "collate_encoded",
    "available_cpus",
    "worker_count",
    "init_worker",
]
