"""Backbones, queues, the method contract and registry, and the self-supervised methods.

Each method is one file holding its module, its recipe config and its registry entry;
importing it registers it. Adding a method: its file, plus its line below.
"""
from .backbone import TimmBackbone
from .config import PretrainConfig
from .distributed import gather_no_grad, gather_with_grad, rank_and_world_size, shared_permutation
from .method import Method, StepContext
from .momentum import momentum_update
from .queue import FeatureQueue
from .registry import MethodSpec, get_method, method_names, method_of, register_method

# the methods, in the order tables list them
from .mocov2 import MoCoV2, MoCoV2Config
from .mls import MLS, MLSConfig
from .simsiam import SimSiam, SimSiamConfig
from .bam import BAM, BAMConfig
from .densecl import DenseCL, DenseCLConfig

__all__ = [
    "TimmBackbone", "FeatureQueue", "momentum_update", "rank_and_world_size", "gather_no_grad", "gather_with_grad",
    "shared_permutation", "PretrainConfig", "Method", "StepContext", "MethodSpec", "register_method", "get_method",
    "method_names", "method_of",
    "MoCoV2", "MoCoV2Config", "MLS", "MLSConfig", "SimSiam", "SimSiamConfig", "BAM", "BAMConfig", "DenseCL", "DenseCLConfig",
]
