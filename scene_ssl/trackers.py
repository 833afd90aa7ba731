"""Which experiment trackers a run reports to (``--report-to``), through Accelerate's trackers.

``auto`` (the default): TensorBoard when it is installed, else none; ``all``: every one of
TensorBoard, Weights & Biases and MLflow that is installed; ``none``; or names, comma
separated (``tensorboard,wandb``): each must be installed. ``train_log.jsonl`` is written
whatever this says (:class:`scene_ssl.train.train_log.TrainLog`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from accelerate.utils import ProjectConfiguration

__all__ = ["REPORT_TO", "REPORT_TO_HELP", "trackers_for", "check_report_to", "tracker_kwargs", "trackers_line"]

#: tracker -> the package it needs
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
REPORT_TO = ("auto", "all", "none", *TRACKERS)
REPORT_TO_HELP = ("experiment trackers: auto (tensorboard when installed) | all (every installed one of tensorboard, "
                  "wandb, mlflow) | none | names, comma separated; train_log.jsonl is always written")


def _installed(name: str) -> bool:
    return importlib.util.find_spec(TRACKERS[name]) is not None


def check_report_to(report_to: str) -> list[str]:
    """The names ``report_to`` asks for, checked (an unknown name or a missing package is an error)."""
    names = [n.strip() for n in str(report_to).split(",") if n.strip()]
    if not names:
        raise ValueError(f"report_to must be one of {REPORT_TO} or tracker names, got {report_to!r}")
    if len(names) > 1 and not set(names) <= set(TRACKERS):
        raise ValueError(f"report_to: only tracker names ({', '.join(TRACKERS)}) combine with commas, got {report_to!r}")
    if names[0] in ("auto", "all", "none"):
        return names
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"report_to must be one of {REPORT_TO} or tracker names, got {name!r}")
        if not _installed(name):
            raise ValueError(f"report_to {name}: {TRACKERS[name]} is not installed (pip install {TRACKERS[name]})")
    return names


def trackers_for(report_to: str) -> list:
    """Accelerate's ``log_with`` for ``report_to``: tracker names (empty: none)."""
    names = check_report_to(report_to)
    if names == ["none"]:
        return []
    if names == ["auto"]:
        return ["tensorboard"] if _installed("tensorboard") else []
    if names == ["all"]:
        return [n for n in TRACKERS if _installed(n)]
    return names


def tracker_kwargs(report_to: str, output_dir: str | Path) -> dict:
    """The ``Accelerator`` arguments of a run that reports to ``report_to``: ``log_with`` and
    the logging folder ``OUTPUT_DIR/logs`` (a run's trackers go to ``logs/<project>``)."""
    out = Path(output_dir)
    return {"log_with": trackers_for(report_to) or None,
            "project_config": ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs"))}


def trackers_line(accelerator) -> str:
    """How a run's header names its trackers: `` and tensorboard (logs/)`` or a hint."""
    names = [getattr(t, "name", type(t).__name__) for t in accelerator.trackers]
    if names:
        return f" and {', '.join(names)} (logs/)"
    return "" if _installed("tensorboard") else " (pip install tensorboard, or --report-to wandb / mlflow, for curves)"
