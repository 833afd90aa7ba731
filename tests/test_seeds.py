import json
import statistics

import pytest

from scene_ssl.seeds import run_seeds


def test_seeds_aggregate_and_a_finished_seed_is_not_run_again(tmp_path):
    calls = []

    def one(seed, folder):
        calls.append(seed)
        return {"pretrained": {"top1": 10.0 + seed, "top5": 50.0}, "note": "text is dropped"}

    (tmp_path / "seed_1").mkdir()
    (tmp_path / "seed_1" / "result.json").write_text(json.dumps({"pretrained/top1": 30.0, "pretrained/top5": 50.0}))
    summary = run_seeds([0, 1, 2], tmp_path, one, print_fn=lambda *_: None)
    assert calls == [0, 2]  # seed 1 was finished
    assert summary["seeds"][1]["pretrained/top1"] == 30.0 and summary["n"]["pretrained/top1"] == 3
    values = [10.0, 30.0, 12.0]
    assert summary["mean"]["pretrained/top1"] == pytest.approx(statistics.mean(values))
    assert summary["std"]["pretrained/top1"] == pytest.approx(statistics.stdev(values))
    assert json.loads((tmp_path / "seed_2" / "result.json").read_text()) == {"pretrained/top1": 12.0, "pretrained/top5": 50.0}
    again = run_seeds([0, 1, 2], tmp_path, one, print_fn=lambda *_: None)
    assert calls == [0, 2] and again["mean"] == summary["mean"]  # everything finished: nothing runs
