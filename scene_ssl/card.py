"""The model card of an export, rendered from its ``config.json`` and ``scene_ssl.json``.

The template is the top-level ``MODEL_CARD.md``; evaluation results become
huggingface_hub ``EvalResult`` entries, so the Hub shows them as a ``model-index``. The
method, its name and citation come from ``scene_ssl.json`` (written at export from the
method registry), never from the export's tag or name.
"""
from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

__all__ = ["write_card", "dataset_name", "project_url"]


def _template() -> str:
    path = Path(__file__).with_name("MODEL_CARD.md")  # the top-level MODEL_CARD.md (a link in a checkout)
    if not path.is_file():
        raise FileNotFoundError(f"the MODEL_CARD.md template is missing beside the scene_ssl package ({path})")
    return path.read_text()


def project_url() -> str | None:
    """The project's home page from the installed package's metadata, or None when it sets none
    (a card never links to a repository that is not there)."""
    try:
        meta = metadata("scene-ssl")
    except PackageNotFoundError:
        return None
    urls = [u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or [] if "," in u]
    return meta.get("Home-page") or (urls[0] if urls else None)


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
        spread = r.get("spread") or {}
        numbers = ", ".join(f"{k} {v:.1f}" + (f" ± {spread[k]:.1f}" if k in spread else "") for k, v in r["metrics"].items())
        if r.get("runs"):
            numbers += f" (mean ± std of {r['runs']} runs)"
        rows.append(f"| {r['name']} | {r['dataset']} {r.get('split', '')} | {numbers} | {r.get('source', '')} |")
    return "\n".join(rows)


def write_card(folder: str | Path) -> Path:
    """(Re-)write ``folder/README.md`` from the export's own files."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    meta = json.loads((folder / "scene_ssl.json").read_text())
    pc = config["pretrained_cfg"]
    method = meta.get("method")  # the registry name of the method that trained, written at export
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
        tags=["image-feature-extraction", "timm", "self-supervised", "scene_ssl", *([method] if method else [])],
        datasets=[dataset] if dataset not in ("scenes", "folder", "unknown") else None,
        eval_results=eval_results or None, pipeline_tag="image-feature-extraction",
    )
    repo_id = meta.get("repo_id")
    card = ModelCard.from_template(
        card_data, template_str=_template(), model_name=meta["name"], description=pc.get("description", ""),
        architecture=config.get("architecture", ""), method=meta.get("method_name") or "a self-supervised method",
        dataset=dataset, project_url=project_url(),
        load_name=f"hf-hub:{repo_id}" if repo_id else f"local-dir:{folder.resolve()}",
        num_features=config.get("num_features", ""), input_size=pc.get("input_size"), mean=pc.get("mean"),
        std=pc.get("std"), results_table=_results_table(results),
        train_rows=[(k, v) for k, v in train_config.items() if v is not None], citation=meta.get("citation"),
    )
    card.save(str(folder / "README.md"))
    return folder / "README.md"
