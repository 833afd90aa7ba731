"""Multi-label (GAMP) or single-label linear probe on a frozen backbone.

The recipe lives in the package (``scene_ssl.recipes.probe_linear``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.probe_linear``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.probe_linear import main

if __name__ == "__main__":
    main()
