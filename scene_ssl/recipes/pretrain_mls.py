"""MLS pretraining (Multi-Label Self-supervised learning, Zhu, Fu & Wu, ICCV 2023).

MoCo v2 with a second queue of backbone features; each image gets top-k pseudo-labels over
the queue and a binary cross-entropy loss. ``--mls-weight 0`` trains plain MoCo v2.

With no arguments it runs the embedded quick job (configs/mls_scenes.yaml): generate the
synthetic scene set, pretrain a small backbone on the CPU for a few minutes, print the
linear-probe mAP next to a randomly initialised backbone, and export the weights.

    accelerate launch recipes/pretrain_mls.py
    accelerate launch recipes/pretrain_mls.py --config recipes/configs/mls_coco_r50.yaml --data coco:/data/coco
    accelerate launch --multi_gpu --num_processes 8 --mixed_precision bf16 recipes/pretrain_mls.py \\
        --config recipes/configs/mls_coco_r50.yaml --data coco:/data/coco --batch-size 32
    accelerate launch recipes/pretrain_mls.py --config ... --resume latest      # continue a run
    accelerate launch recipes/pretrain_mls.py --mls-weight 0 --config ...       # MoCo v2 baseline

Multi-node: the same command with ``--num_machines N --machine_rank R --main_process_ip ...``
(or an ``accelerate config`` file); nothing in the recipe changes. Every config field is
a flag (``--queue-size 4096``, ``--topk 20``, ``--dictionary both`` ...); see ``--help``.
"""
from __future__ import annotations


from scene_ssl.recipes import CONFIGS
from scene_ssl.recipe import run_pretraining
from scene_ssl.train import PretrainResult


def main(argv: list[str] | None = None) -> PretrainResult:
    return run_pretraining("mls", argv, CONFIGS, description=__doc__)


if __name__ == "__main__":
    main()
