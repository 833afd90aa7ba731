"""Backbones, queues and the self-supervised methods."""
from .backbone import TimmBackbone
from .bam import BAM
from .loading import export_folder, load_backbone
from .distributed import gather_no_grad, gather_with_grad, rank_and_world_size, shared_permutation
from .mls import MLS
from .moco import MoCoV2
from .momentum import momentum_update
from .queue import FeatureQueue
from .simsiam import SimSiam

__all__ = [
    "TimmBackbone",
    "load_backbone",
    "export_folder",
    "FeatureQueue",
    "momentum_update",
    "MoCoV2",
    "MLS",
    "SimSiam",
    "BAM",
    "rank_and_world_size",
    "gather_no_grad",
    "gather_with_grad",
    "shared_permutation",
]
