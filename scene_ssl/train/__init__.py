"""The shared pretraining loop, its config schema and checkpoints."""
from .checkpoint import TrainState, find_checkpoint, list_checkpoints, save_checkpoint
from .config import BAMConfig, MLSConfig, PretrainConfig, config_to_dict, load_config, parse_config, parse_recipe_config, save_config
from .loop import NonFiniteLossError, pretrain
from .schedule import cosine_lr, cosine_momentum

__all__ = [
    "PretrainConfig", "MLSConfig", "BAMConfig", "parse_config", "parse_recipe_config", "load_config", "save_config", "config_to_dict",
    "pretrain", "NonFiniteLossError", "save_checkpoint", "find_checkpoint", "list_checkpoints", "TrainState",
    "cosine_lr", "cosine_momentum",
]
