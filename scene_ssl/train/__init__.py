"""The shared pretraining loop, its config schemas and checkpoints."""
from ..cli import config_to_dict, load_config, parse_config, parse_recipe_config, save_config, user_errors
from ..schedule import cosine_lr, cosine_momentum
from .checkpoint import TrainState, find_checkpoint, list_checkpoints, save_checkpoint
from .config import BAMConfig, MLSConfig, PretrainConfig
from .loop import NonFiniteLossError, PretrainResult, make_accelerator, pretrain

__all__ = [
    "PretrainConfig", "MLSConfig", "BAMConfig", "parse_config", "parse_recipe_config", "load_config", "save_config", "config_to_dict",
    "user_errors", "pretrain", "PretrainResult", "make_accelerator", "NonFiniteLossError", "save_checkpoint", "find_checkpoint",
    "list_checkpoints", "TrainState", "cosine_lr", "cosine_momentum",
]
