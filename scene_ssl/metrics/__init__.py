"""Evaluation metrics."""
from .multilabel import METRIC_NAMES, average_precision, multilabel_metrics, topk_accuracy

__all__ = ["average_precision", "multilabel_metrics", "topk_accuracy", "METRIC_NAMES"]
