"""The model card of an export, rendered from its ``config.json`` and ``scene_ssl.json``.

The template is the top-level ``MODEL_CARD.md``; evaluation results become
huggingface_hub ``EvalResult`` entries, so the Hub shows them as a ``model-index``.
"""
from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

__all__ = ["write_card", "dataset_name", "CITATIONS", "METHOD_NAMES", "method_key"]

CITATIONS = {
    "mls": """```bibtex
@inproceedings{zhu2023mls,
  title     = {Multi-Label Self-Supervised Learning with Scene Images},
  author    = {Zhu, Ke and Fu, Minghao and Wu, Jianxin},
  booktitle = {ICCV},
  year      = {2023}
}
```""",
    "bam": """```bibtex
@article{chen2025bam,
  title   = {Self-Supervised Contrastive Learning for Multi-Label Images},
  author  = {Chen, Jiale},
  journal = {arXiv:2506.23156},
  year    = {2025}
}
```""",
    "mocov2": """```bibtex
@article{chen2020mocov2,
  title   = {Improved Baselines with Momentum Contrastive Learning},
  author  = {Chen, Xinlei and Fan, Haoqi and Girshick, Ross and He, Kaiming},
  journal = {arXiv:2003.04297},
  year    = {2020}
}
```""",
    "simsiam": """```bibtex
@inproceedings{chen2021simsiam,
  title     = {Exploring Simple Siamese Representation Learning},
  author    = {Chen, Xinlei and He, Kaiming},
  booktitle = {CVPR},
  year      = {2021}
}
```""",
}
METHOD_NAMES = {"mls": "MLS", "bam": "BAM + IA-CLoss", "mocov2": "MoCo v2", "simsiam": "SimSiam"}


def method_key(tag: str) -> str:
    """The method a tag names by its first word (``mls_coco`` -> ``mls``); ``mls`` if none."""
    head = tag.replace("-", "_").split("_", 1)[0].lower()
    return head if head in CITATIONS else "mls"


def _template() -> str:
    for path in (Path(__file__).resolve().parents[1] / "MODEL_CARD.md", Path(__file__).with_name("MODEL_CARD.md")):
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError("MODEL_CARD.md template not found next to the scene_ssl package")


def dataset_name(spec: str | None) -> str:
    """How a card names the data of a spec: the repo of ``hf:org/name``, else its kind
    (``coco``, ``scenes``, ``wds`` ...).

    Example:
        >>> dataset_name("hf:detection-datasets/coco?streaming=1"), dataset_name("coco:/data/coco")
        ('detection-datasets/coco', 'coco')
    """
    kind, _, arg = (spec or "unknown").partition(":")
    return arg.split("?", 1)[0] if kind == "hf" else kind


def _results_table(results: list[dict]) -> str:
    if not results:
        return ""
    rows = ["| evaluation | data | results | run |", "|---|---|---|---|"]
    for r in results:
        numbers = ", ".join(f"{k} {v:.1f}" for k, v in r["metrics"].items())
        rows.append(f"| {r['name']} | {r['dataset']} {r.get('split', '')} | {numbers} | {r.get('source', '')} |")
    return "\n".join(rows)


def write_card(folder: str | Path) -> Path:
    """(Re-)write ``folder/README.md`` from the export's own files."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    meta = json.loads((folder / "scene_ssl.json").read_text())
    pc = config["pretrained_cfg"]
    method = method_key(meta["tag"])
    train_config = meta.get("train_config", {})
    dataset = dataset_name(train_config.get("data"))
    results = meta.get("results", [])
    # the Hub groups results by task type and dataset, not by task name: the metric names
    # say which evaluation each number comes from
    eval_results = [
        EvalResult(task_type=r["task"], task_name=r["name"], dataset_type=r["dataset"], dataset_name=r["dataset"],
                   dataset_split=r.get("split"), metric_type=metric, metric_name=f"{metric} ({r['name']})",
                   metric_value=round(float(value), 2))
        for r in results for metric, value in r["metrics"].items()
    ]
    card_data = ModelCardData(
        library_name="timm", license=pc.get("license", "apache-2.0"), model_name=meta["name"],
        tags=["image-feature-extraction", "timm", "self-supervised", "scene_ssl", method],
        datasets=[dataset] if dataset not in ("scenes", "folder", "unknown") else None,
        eval_results=eval_results or None, pipeline_tag="image-feature-extraction",
    )
    repo_id = meta.get("repo_id")
    card = ModelCard.from_template(
        card_data, template_str=_template(), model_name=meta["name"], description=pc.get("description", ""),
        architecture=config.get("architecture", ""), method=METHOD_NAMES[method], dataset=dataset,
        load_name=f"hf-hub:{repo_id}" if repo_id else f"local-dir:{folder.resolve()}",
        num_features=config.get("num_features", ""), input_size=pc.get("input_size"), mean=pc.get("mean"),
        std=pc.get("std"), results_table=_results_table(results),
        train_rows=[(k, v) for k, v in train_config.items() if v is not None], citation=CITATIONS[method],
    )
    card.save(str(folder / "README.md"))
    return folder / "README.md"
