"""DenseCL pretraining (Dense Contrastive Learning, Wang et al., CVPR 2021): MoCo v2 plus a

The recipe lives in the package (``scene_ssl.recipes.pretrain_densecl``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.pretrain_densecl``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.pretrain_densecl import main

if __name__ == "__main__":
    main()
