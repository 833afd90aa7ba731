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

from pathlib import Path

from scene_ssl.export import export_run
from scene_ssl.models import MLS, MoCoV2
from scene_ssl.probe import KNNMonitor, probe_after_training
from scene_ssl.train import MLSConfig, PretrainResult, parse_recipe_config, pretrain, user_errors
from scene_ssl.transforms import MoCoV2Transform

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "mls_scenes.yaml"


def build_model(cfg: MLSConfig):
    common = dict(dim=cfg.dim, hidden_dim=cfg.hidden_dim, queue_size=cfg.queue_size, momentum=cfg.ema_momentum,
                  temperature=cfg.temperature, shuffle_bn=cfg.shuffle_bn, bn_splits=cfg.bn_splits,
                  pretrained=cfg.pretrained)
    if cfg.mls_weight == 0:
        return MoCoV2(cfg.backbone, **common)
    return MLS(cfg.backbone, **common, topk=cfg.topk, mls_weight=cfg.mls_weight, loss_form=cfg.loss_form,
               dictionary=cfg.dictionary)


def build_transform(cfg: MLSConfig) -> MoCoV2Transform:
    return MoCoV2Transform(size=cfg.image_size, scale=(cfg.crop_scale_min, 1.0), hue_mode=cfg.hue_mode)


def main(argv: list[str] | None = None) -> PretrainResult:
    with user_errors(MLSConfig):  # a bad flag, spec or file: one line and exit status 2
        cfg = parse_recipe_config(MLSConfig, argv, DEFAULT_CONFIG, description=__doc__)
        run = pretrain(cfg, build_model, build_transform, monitor=KNNMonitor.from_config(cfg))
    results = probe_after_training(cfg, run)  # the linear probe vs a random-init backbone (--probe-data)
    export_run(run, cfg, results)  # the timm-loadable export, its card carrying those results
    return run


if __name__ == "__main__":
    main()
