"""Data sources (COCO via pycocotools, HF datasets, image folders, the embedded scenes) and loaders."""
from .decode import DecodeError, decode_image
from .load import default_scenes_dir, load_dataset
from .sampler import EpochShuffleSampler, seeded_generator
from .scenes import SCENE_CLASSES, make_scenes
from .schema import class_names, num_classes
from .views import ViewDataset, collate_decoded, collate_views

__all__ = [
    "load_dataset",
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
]
