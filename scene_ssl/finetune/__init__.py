"""Fine-tuning classification: the whole backbone and a linear head, by the papers' protocols."""
from .config import FinetuneConfig
from .run import grid_search, held_out_val, run_finetune
from .train import Classifier, finetune_once, predict_and_score

__all__ = ["FinetuneConfig", "run_finetune", "grid_search", "held_out_val", "finetune_once", "predict_and_score", "Classifier"]
