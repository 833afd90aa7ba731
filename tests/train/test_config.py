from pathlib import Path

import pytest
import yaml

from scene_ssl.config import load_config, parse_config, save_config
from scene_ssl.models import BAMConfig, MLSConfig


def test_defaults_are_the_papers():
    c = MLSConfig()
    assert (c.queue_size, c.dim, c.topk, c.temperature, c.mls_weight, c.ema_momentum, c.base_lr) == (4096, 256, 20, 0.2, 0.5, 0.995, 0.3)
    b = BAMConfig()
    assert (b.blocks, b.ia_weight, b.ia_temperature, b.ia_base_temperature, b.ia_form, b.base_lr) == (4, 4.0, 0.3, 0.07, "in", 0.05)
    assert b.lr(num_processes=2) == pytest.approx(0.05 * 256 * 2 * 4 / 256)  # x4 for the blocks
    assert c.lr(num_processes=1) == pytest.approx(0.3)


def test_yaml_then_cli_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"topk": 7, "backbone": "resnet18", "clip_grad_norm": 1.5, "shuffle_bn": False}))
    cfg = parse_config(MLSConfig, ["--config", str(path), "--topk", "9", "--mixed-precision", "bf16", "--resume", "none"])
    assert (cfg.topk, cfg.backbone, cfg.clip_grad_norm, cfg.shuffle_bn, cfg.mixed_precision, cfg.resume) == (9, "resnet18", 1.5, False, "bf16", None)
    assert parse_config(MLSConfig, ["--config", str(path)]).topk == 7
    assert parse_config(MLSConfig, [], default_config=path).topk == 7
    assert parse_config(BAMConfig, ["--stop-grad", "true"]).stop_grad is True


def test_unknown_keys_are_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("topk: 5\nquue_size: 10\n")
    with pytest.raises(ValueError, match="unknown config key 'quue_size' in .*c.yaml"):
        load_config(MLSConfig, path)
    with pytest.raises(SystemExit):
        parse_config(MLSConfig, ["--quue-size", "10"])
    with pytest.raises(ValueError, match="unknown config key 'blocks'"):
        load_config(MLSConfig, None, {"blocks": 4})  # a BAM field is not an MLS field


@pytest.mark.parametrize("key,value", [("topk", "many"), ("topk", 2.5), ("base_lr", True), ("shuffle_bn", "maybe"), ("data", None)])
def test_bad_values_name_the_field(key, value):
    with pytest.raises(ValueError, match=key):
        load_config(MLSConfig, None, {key: value})


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(MLSConfig, tmp_path / "nope.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(BAMConfig, None, {"overlap": 0.3, "stop_grad": False, "max_steps": 12})
    save_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(BAMConfig, tmp_path / "out" / "config.yaml") == cfg


def test_recipe_configs_parse_with_the_config_of_the_method_that_names_them():
    from pathlib import Path

    from scene_ssl.detection.config import DetectionConfig
    from scene_ssl.finetune import FinetuneConfig
    from scene_ssl.models import get_method, method_names
    from scene_ssl.probe import KNNProbeConfig, LinearProbeConfig
    from scene_ssl.recipes.visualize_nn import VisualizeConfig
    from scene_ssl.segmentation import SegmentationConfig

    root = Path(__file__).resolve().parents[2] / "recipes" / "configs"
    owners = {}
    for name in method_names():
        spec = get_method(name)
        for file in (spec.quick_config, spec.paper_config):
            if file:
                owners[file] = spec.config
                assert load_config(spec.config, root / file).build_views().num_views > 0
    for path in sorted(root.glob("*.yaml")):
        recipe_configs = {"detection": DetectionConfig, "finetune": FinetuneConfig, "segmentation": SegmentationConfig,
                          "probe_linear": LinearProbeConfig, "probe_knn": KNNProbeConfig, "visualize": VisualizeConfig}
        cls = next((c for prefix, c in recipe_configs.items() if path.name.startswith(prefix + "_")), None) or owners.get(path.name)
        assert cls is not None, f"{path.name} belongs to no registered method"
        load_config(cls, path).check()


def test_a_misspelt_yaml_key_is_named_with_its_file_not_blamed_on_another_flag(tmp_path, capsys):
    from scene_ssl.recipe import run_pretraining

    (tmp_path / "mine.yaml").write_text("batch_sise: 64\n")
    with pytest.raises(SystemExit) as exit_:
        run_pretraining("mls", ["--config", str(tmp_path / "mine.yaml")], tmp_path)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    # main 8d5e37d: "error: --augment-on: unknown config key 'batch_sise' in ...; valid keys: augment_on, ..."
    assert exit_.value.code == 2 and line == (f"error: unknown config key 'batch_sise' in {tmp_path / 'mine.yaml'}; "
                                              "did you mean 'batch_size'?")


@pytest.mark.parametrize("flags,name", [(["--image-size", "7"], "image_size 7"),
                                        (["--probe-image-size", "8", "--probe-data", "scenes"], "probe_image_size 8")])
def test_an_image_size_below_half_the_backbone_stride_is_one_line(tmp_path, capsys, flags, name):
    from scene_ssl.recipe import run_pretraining

    with pytest.raises(SystemExit) as exit_:
        run_pretraining("mls", ["--backbone", "test_resnet", "--output-dir", str(tmp_path / "o"), *flags],
                        Path(__file__).resolve().parents[2] / "recipes" / "configs")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and f"{name} is too small for test_resnet (stride 32)" in line  # main: trained on
    assert not (tmp_path / "o" / "config.yaml").exists()


@pytest.mark.parametrize("old, render", [(["--augment-on", "gpu"], "process"), (["--augment-on", "gpu", "--decode-on", "gpu"], "device"),
                                         (["--augment-on", "cpu"], "cpu")])
def test_the_old_view_flags_still_work_with_a_one_line_notice(old, render, capsys):
    from scene_ssl.config import parse_config
    from scene_ssl.models import MLSConfig

    cfg = parse_config(MLSConfig, old)
    cfg.check()
    assert cfg.render == render and cfg.augment_on is None and cfg.decode_on is None  # the saved config says render only
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and notice[0].endswith(f"is deprecated (--render); this run renders: {render}")
    # an old run's saved values (both cpu) beside --render: --render stands; decode gpu beside render process: device
    saved = parse_config(MLSConfig, ["--render", "process", "--augment-on", "cpu", "--decode-on", "cpu"])
    assert saved.render == "process" and saved.augment_on is None
    assert parse_config(MLSConfig, ["--render", "process", "--decode-on", "gpu"]).render == "device"
    with pytest.raises(ValueError, match="render must be one of"):
        parse_config(MLSConfig, ["--render", "gpu"]).check()
