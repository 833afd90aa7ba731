"""Every registered method the way users run it on a cluster, on 2 CPU processes (gloo): bf16
autocast, gradient accumulation over a batch count per epoch it does not divide, two epochs
(an epoch boundary crossed), the kNN monitor each epoch, then the linear probe and the export
after training, and the probe recipes on that export — all through ``accelerate launch``."""
import json
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import load_file

from scene_ssl.models import method_names

from ..launching import ROOT, accelerate_launch, job_env, new_mark, nothing_left_behind

DRIVER = ROOT / "tests" / "recipes" / "run_recipe.py"

#: each method's smallest config that still runs its whole algorithm
SMALL = {
    "mocov2": ["--image-size", "24", "--queue-size", "40", "--dim", "16", "--hidden-dim", "32"],
    "mls": ["--image-size", "24", "--queue-size", "40", "--dim", "16", "--hidden-dim", "32", "--topk", "4"],
    "densecl": ["--image-size", "64", "--queue-size", "40", "--dim", "8", "--hidden-dim", "16"],
    "simsiam": ["--image-size", "24", "--proj-dim", "16", "--proj-hidden-dim", "16", "--pred-hidden-dim", "8"],
    "bam": ["--image-size", "16", "--proj-dim", "16", "--proj-hidden-dim", "16", "--pred-hidden-dim", "8"],
}
# 48 images / (2 processes x batch 4) = 6 batches per epoch per process; accumulation 4: steps of 4 and 2
COMMON = ["--backbone", "test_resnet", "--batch-size", "4", "--grad-accum-steps", "4", "--epochs", "2", "--num-workers", "1",
          "--log-every", "1", "--save-every", "0", "--channels-last", "false", "--monitor-every", "1",
          "--probe-epochs", "3", "--probe-image-size", "32"]


def launch(cmd: list[str], tmp_path, processes: int = 2, mixed_precision: str = "no", timeout: float = 300):
    mark = new_mark()
    proc = subprocess.run([*accelerate_launch(processes, mixed_precision), *cmd], env=job_env(tmp_path, mark),
                          capture_output=True, text=True, timeout=timeout)
    nothing_left_behind(mark)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_every_method_is_in_the_table_above():
    assert sorted(SMALL) == sorted(method_names())


@pytest.mark.parametrize("method", sorted(SMALL))
def test_a_method_pretrains_probes_and_exports_on_two_processes(method, scenes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    data = f"coco:{scenes}"
    proc = launch([str(DRIVER), "pretrain", str(out), "--method", method, "--data", data, "--probe-data", data,
                   "--output-dir", str(out), *COMMON, *SMALL[method]], tmp_path, mixed_precision="bf16")
    assert "2 steps/epoch, 4 steps" in proc.stdout and "2 process(es)" in proc.stdout, proc.stdout[-2000:]
    ranks = [load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for k in ranks[0]:  # weights, BN statistics and queues: the same on both processes
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    for queue in (k for k in ranks[0] if k.endswith("ptr")):  # every forward enqueued both processes' keys
        assert int(ranks[0][queue]) == 2 * 6 * 8 % 40, queue  # 2 epochs x 6 forwards x 8 keys, in a queue of 40
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs if "loss" in line] == [1, 2, 3, 4]
    assert sum("knn_mAP" in line for line in logs) == 3  # before the first step and after each epoch
    probe = json.loads((out / "probe.json").read_text())
    assert set(probe) == {"pretrained", "random init"} and 0 <= probe["pretrained"]["mAP"] <= 100
    export = out / "export"
    model = timm.create_model(f"local-dir:{export}", pretrained=True)
    exported = model.state_dict()
    trained = {k.removeprefix("encoder.model."): v for k, v in ranks[0].items() if k.startswith("encoder.model.")}
    assert exported.keys() == trained.keys() and all(torch.equal(exported[k], trained[k]) for k in trained)
    assert "linear probe" in (export / "README.md").read_text()


def test_the_probe_recipes_share_their_work_across_processes_and_agree_with_one(scenes, tmp_path):
    from scene_ssl.export import save_pretrained
    from scene_ssl.models import TimmBackbone

    torch.manual_seed(0)
    export = save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="t", train_config={"image_size": 32})
    data = f"coco:{scenes}"
    flags = ["--model", str(export), "--data", data, "--image-size", "32", "--num-workers", "1", "--batch-size", "8"]
    results = {}
    for processes in (1, 2):
        for recipe, extra in (("probe_linear", ["--epochs", "3"]), ("probe_linear_online", ["--epochs", "3", "--cache-features", "false"]),
                              ("probe_knn", ["--k", "5"])):
            out = tmp_path / f"{recipe}_{processes}"
            script = ROOT / "recipes" / f"{recipe.removesuffix('_online')}.py"
            launch([str(script), *flags, *extra, "--output-dir", str(out)], tmp_path, processes)
            results[recipe, processes] = json.loads((out / "metrics.json").read_text())
    for recipe in ("probe_linear", "probe_knn"):  # the same features, the same head: the same numbers
        assert results[recipe, 2]["mAP"] == pytest.approx(results[recipe, 1]["mAP"], abs=1e-4), recipe
    # online: each batch is embedded in two halves and gathered back (another summation order)
    assert results["probe_linear_online", 2]["mAP"] == pytest.approx(results["probe_linear_online", 1]["mAP"], abs=0.5)
