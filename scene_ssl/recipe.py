"""The body of every pretraining recipe: config -> pretrain -> probe -> export.

``recipes/pretrain_mls.py`` and its siblings are this, for one registered method each
(``recipes/pretrain.py --method NAME`` for any of them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .config import parse_recipe_config, user_errors
from .export import export_run
from .models import get_method
from .probe import KNNMonitor, probe_after_training
from .train import PretrainResult, pretrain

__all__ = ["run_pretraining"]

def run_pretraining(method: str, argv: Sequence[str] | None, config_dir: str | Path,
                    description: str | None = None) -> PretrainResult:
    """Parse the method's config (its quick YAML in ``config_dir`` unless ``--config``),
    pretrain, linear-probe against a random-init backbone (``--probe-data``), export.

    A bad flag, spec, file or hyperparameter: one line naming it and exit status 2.
    """
    spec = get_method(method)
    with user_errors(spec.config):
        cfg = parse_recipe_config(spec.config, argv, Path(config_dir) / spec.quick_config,
                                  description=description or f"{spec.display_name} pretraining ({spec.paper}).")
        run = pretrain(cfg, monitor=KNNMonitor.from_config(cfg))
        results = probe_after_training(cfg, run)  # the linear probe vs a random-init backbone (--probe-data), every process
        export_run(run, cfg, results)  # the timm-loadable export (a full disk: one line too), its card with those results
        run.accelerator.end_training()
    return run
