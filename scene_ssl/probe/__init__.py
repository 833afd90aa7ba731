"""Probes on frozen backbones: the GAMP multi-label linear probe and kNN, on one core (:mod:`.core`)."""
from .compare import compare_with_random_init, format_table, probe_after_training
from .config import KNNProbeConfig, LinearProbeConfig
from .core import HeadOptions, head_options, knn_probe, linear_probe, score
from .features import ProbeImages, extract_features
from .knn import knn_scores
from .linear import fit_linear_head, probe_metrics
from .monitor import KNNMonitor
from .run import run_knn_probe, run_linear_probe

__all__ = [
    "ProbeImages", "extract_features", "fit_linear_head", "probe_metrics", "knn_scores", "compare_with_random_init",
    "probe_after_training", "format_table", "KNNMonitor", "LinearProbeConfig", "KNNProbeConfig", "run_linear_probe",
    "run_knn_probe", "HeadOptions", "head_options", "linear_probe", "knn_probe", "score",
]
