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


from scene_ssl.recipes import CONFIGS
from scene_ssl.recipe import run_pretraining
from scene_ssl.train import PretrainResult


def main(argv: list[str] | None = None) -> PretrainResult:
    return run_pretraining("bam", argv, CONFIGS, description=__doc__)


if __name__ == "__main__":
    main()
