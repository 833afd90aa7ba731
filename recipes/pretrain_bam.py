"""BAM + IA-CLoss pretraining (block-wise augmentation and image-aware contrastive loss on

The recipe lives in the package (``scene_ssl.recipes.pretrain_bam``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.pretrain_bam``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.pretrain_bam import main

if __name__ == "__main__":
    main()
