"""Pictures of what a pretrained backbone has learned.

The recipe lives in the package (``scene_ssl.recipes.visualize_nn``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.visualize_nn``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.visualize_nn import main

if __name__ == "__main__":
    main()
