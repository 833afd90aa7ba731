"""Pretrain any registered method: ``--method NAME`` plus that method's flags.

    accelerate launch recipes/pretrain.py --method mocov2
    accelerate launch recipes/pretrain.py --method simsiam --epochs 20
    accelerate launch recipes/pretrain.py --method densecl --config recipes/configs/densecl_coco_r50.yaml --data coco:/data/coco
    accelerate launch recipes/pretrain.py --method mls --help

Without ``--config`` each method runs its embedded quick job (``recipes/configs/<method>_scenes.yaml``).
The methods are those of :mod:`scene_ssl.models.registry`; ``pretrain_mls.py``,
``pretrain_bam.py`` and ``pretrain_densecl.py`` are this recipe with the method fixed.
"""
from __future__ import annotations

import argparse
import sys

from scene_ssl.recipes import CONFIGS
from scene_ssl.models import get_method, method_names
from scene_ssl.recipe import run_pretraining
from scene_ssl.train import PretrainResult


def main(argv: list[str] | None = None) -> PretrainResult:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", choices=method_names(), required=not {"-h", "--help"} & set(argv))
    known, rest = pre.parse_known_args(argv)
    if known.method is None:  # --help without a method: say what there is
        print(__doc__ + "\nmethods: " + ", ".join(f"{n} ({get_method(n).display_name})" for n in method_names()))
        raise SystemExit(0)
    return run_pretraining(known.method, rest, CONFIGS)


if __name__ == "__main__":
    main()
