"""The shared pretraining loop and its checkpoints."""
from .checkpoint import DamagedCheckpoint, TrainState, find_checkpoint, list_checkpoints, save_checkpoint
from .loop import NonFiniteLossError, PretrainResult, make_accelerator, pretrain

__all__ = ["pretrain", "PretrainResult", "make_accelerator", "NonFiniteLossError", "save_checkpoint", "find_checkpoint",
           "list_checkpoints", "TrainState", "DamagedCheckpoint"]
