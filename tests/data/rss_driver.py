"""Test driver: pretrain MLS on a folder and print this process's peak RSS (bytes) last.

    python tests/data/rss_driver.py FOLDER OUT [recipe flags...]
"""
import resource
import sys
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))
    import pretrain_mls

    pretrain_mls.main(["--data", f"folder:{sys.argv[1]}", "--output-dir", sys.argv[2], *sys.argv[3:]])
    print("peak_rss_bytes", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


if __name__ == "__main__":
    main()
