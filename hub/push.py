"""Export a trained backbone and push it to the Hugging Face Hub as a timm model.

    python hub/push.py outputs/mls_scenes my-org/resnet50-mls-coco
    python hub/push.py outputs/mls_coco_r50 my-org/resnet50-mls-coco --metrics outputs/probe_linear/metrics.json \\
        --private --create-pr --revision main

SOURCE is a training output folder (its config.yaml goes into the card) or an export folder.
The checkpoint is re-exported into a staging folder with the card pointing at
``hf-hub:REPO_ID``; only the model files are uploaded (config.json, model.safetensors,
README.md, scene_ssl.json), never optimizer or training state. Afterwards:

    timm.create_model("hf-hub:my-org/resnet50-mls-coco", pretrained=True)

A token comes from --token, HF_TOKEN or `huggingface-cli login`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml
from huggingface_hub import HfApi, get_token

from scene_ssl.card import dataset_name
from scene_ssl.config import add_bool_flag, parse_tool_args
from scene_ssl.export import evaluation_result, read_export, save_pretrained
from scene_ssl.metrics import METRIC_NAMES
from scene_ssl.loading import export_folder, load_backbone, trained_method

UPLOAD_PATTERNS = ["config.json", "model.safetensors", "README.md", "scene_ssl.json"]


def _probe_result(path: str) -> dict:
    """A probe recipe's metrics.json as an export result entry."""
    m = json.loads(Path(path).read_text())
    names = [k for k in (*METRIC_NAMES, "top1", "top5") if k in m]
    if not names:
        raise SystemExit(f"{path} holds no probe metrics ({', '.join(METRIC_NAMES)} or top1)")
    data = str(m.get("data", "unknown"))
    data = dataset_name(data)
    kind = "knn probe" if "k" in m else "linear probe"
    return evaluation_result("image-classification", f"{m.get('mode', 'multilabel').replace('label', '-label')} {kind} "
                             f"({m.get('pool', 'avgmax')}, {m.get('image_size', '?')} px)", data,
                             {k: m[k] for k in names}, source=Path(path).name)


def stage(source: str, repo_id: str, out: Path, *, tag: str | None = None, metrics_file: str | None = None) -> Path:
    """Re-export SOURCE into ``out`` as it will appear on the Hub: the same method, name, results
    and training config as its local export (plus ``metrics_file``), the card pointing at
    ``repo_id``. ``tag`` changes the pretrained tag only, never the method."""
    src = Path(source)
    previous: dict = {}
    folder = export_folder(source)
    if folder is not None:
        previous = read_export(folder)
    train_config = previous.get("train_config") or {}
    if not train_config:
        for cfg_file in (src / "config.yaml", src.parent / "config.yaml"):
            if cfg_file.is_file():
                train_config = yaml.safe_load(cfg_file.read_text()) or {}
                break
    results = list(previous.get("results", [])) + ([_probe_result(metrics_file)] if metrics_file else [])
    tag = tag or previous.get("tag") or train_config.get("export_tag") or "scene_ssl"
    backbone = load_backbone(source)
    return save_pretrained(backbone, out, tag=tag, method=trained_method(source), name=previous.get("name"),
                           results=results, train_config=train_config, repo_id=repo_id)


def push(source: str, repo_id: str, *, token: str | None = None, private: bool = False, create_pr: bool = False,
         revision: str | None = None, endpoint: str | None = None, tag: str | None = None,
         metrics_file: str | None = None, commit_message: str | None = None):
    token = token or get_token()
    if not token:
        raise SystemExit("no Hugging Face token: pass --token, set HF_TOKEN, or run `huggingface-cli login`")
    if repo_id.count("/") != 1:
        raise SystemExit(f"repo id must look like 'org/name', got {repo_id!r}")
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(source, repo_id, Path(tmp) / "export", tag=tag, metrics_file=metrics_file)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), allow_patterns=UPLOAD_PATTERNS, revision=revision,
            create_pr=create_pr, commit_message=commit_message or f"Upload {repo_id} (scene_ssl)",
        )


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="training output folder or export folder")
    ap.add_argument("repo_id", help="org/name on the Hub")
    ap.add_argument("--token", default=None)
    add_bool_flag(ap, "--private", False, "create the repo private")
    add_bool_flag(ap, "--create-pr", False, "upload as a pull request")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    ap.add_argument("--tag", default=None, help="pretrained tag (default: the export's)")
    ap.add_argument("--metrics", default=None, help="a probe's metrics.json to add to the card (the export's own results are kept)")
    ap.add_argument("--message", default=None, help="commit message")
    args = parse_tool_args(ap, argv)
    info = push(args.source, args.repo_id, token=args.token, private=args.private, create_pr=args.create_pr,
                revision=args.revision, endpoint=args.endpoint, tag=args.tag, metrics_file=args.metrics,
                commit_message=args.message)
    print(f"pushed: {getattr(info, 'pr_url', None) or getattr(info, 'commit_url', info)}")
    print(f'load with: timm.create_model("hf-hub:{args.repo_id}", pretrained=True)')
    return info


if __name__ == "__main__":
    sys.exit(main() and 0)
