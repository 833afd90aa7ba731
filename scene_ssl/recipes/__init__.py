"""The recipes, runnable from an installed package: ``accelerate launch -m scene_ssl.recipes.<name>``
(``recipes/<name>.py`` in a checkout is the same recipe). Their YAMLs are package data, in
``scene_ssl/configs/`` (``recipes/configs`` in a checkout points there: one copy of each).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIGS", "config_path"]

#: the recipes' YAMLs: the quick runs and the papers' protocols
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def config_path(name: str) -> Path:
    """The path of one of the recipes' YAMLs (``mls_scenes.yaml``)."""
    return CONFIGS / name
