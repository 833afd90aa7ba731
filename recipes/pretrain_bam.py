"""BAM + IA-CLoss pretraining (block-wise augmentation and image-aware contrastive loss on
SimSiam; Chen, "Self-Supervised Contrastive Learning for Multi-Label Images").

Each image is cut into 4 overlapping blocks, each block gets two views from two asymmetric
pipelines (8 views per image), and ``L = L_sim + λ·L_ia``. ``--ia-weight 0 --blocks 1``
trains plain SimSiam (with stop-gradient). ``--stop-grad true`` detaches z as SimSiam does;
the default follows the authors' code (no detach while IA-CLoss is on).

With no arguments it runs the embedded quick job (configs/bam_scenes.yaml).

    accelerate launch recipes/pretrain_bam.py
    accelerate launch recipes/pretrain_bam.py --config recipes/configs/bam_coco_r50.yaml --data coco:/data/coco
    accelerate launch --multi_gpu --num_processes 4 --mixed_precision bf16 recipes/pretrain_bam.py \\
        --config recipes/configs/bam_coco_r50.yaml --data coco:/data/coco
    accelerate launch recipes/pretrain_bam.py --config ... --ia-weight 0 --blocks 1     # SimSiam baseline
"""
from __future__ import annotations

from pathlib import Path

from scene_ssl.export import export_run
from scene_ssl.models import BAM, SimSiam
from scene_ssl.probe import KNNMonitor, probe_after_training
from scene_ssl.train import BAMConfig, PretrainResult, parse_recipe_config, pretrain, user_errors
from scene_ssl.transforms import BlockwiseTransform, bam_view_transforms

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "bam_scenes.yaml"


def build_model(cfg: BAMConfig):
    heads = dict(proj_dim=cfg.proj_dim, proj_hidden_dim=cfg.proj_hidden_dim, pred_hidden_dim=cfg.pred_hidden_dim,
                 shuffle=cfg.shuffle, pretrained=cfg.pretrained)
    if cfg.ia_weight == 0 and cfg.blocks == 1 and cfg.stop_grad is not False:
        return SimSiam(cfg.backbone, **heads)
    return BAM(cfg.backbone, blocks=cfg.blocks, ia_weight=cfg.ia_weight, ia_temperature=cfg.ia_temperature,
               ia_base_temperature=cfg.ia_base_temperature, ia_form=cfg.ia_form, stop_grad=cfg.stop_grad, **heads)


def build_transform(cfg: BAMConfig) -> BlockwiseTransform:
    t1, t2 = bam_view_transforms(cfg.image_size, scale=(cfg.crop_scale_min, 1.0), hue_mode=cfg.hue_mode)
    return BlockwiseTransform(t1, t2, overlap=cfg.overlap, blocks=cfg.blocks)


def main(argv: list[str] | None = None) -> PretrainResult:
    with user_errors(BAMConfig):  # a bad flag, spec or file: one line and exit status 2
        cfg = parse_recipe_config(BAMConfig, argv, DEFAULT_CONFIG, description=__doc__)
        run = pretrain(cfg, build_model, build_transform, monitor=KNNMonitor.from_config(cfg))
    results = probe_after_training(cfg, run)  # the linear probe vs a random-init backbone (--probe-data)
    export_run(run, cfg, results)  # the timm-loadable export, its card carrying those results
    return run


if __name__ == "__main__":
    main()
