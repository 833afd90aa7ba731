"""Evaluation metrics."""
from .multilabel import METRIC_NAMES, average_precision, multilabel_metrics
from .singlelabel import mean_per_class_accuracy, singlelabel_metrics, topk_accuracy

__all__ = ["average_precision", "multilabel_metrics", "topk_accuracy", "mean_per_class_accuracy", "singlelabel_metrics",
           "METRIC_NAMES"]
