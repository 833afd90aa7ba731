"""Typed recipe configs: a dataclass is the schema, YAML overrides it, CLI flags override that.

``parse_config(MLSConfig, argv)`` builds ``--field-name`` flags from the dataclass fields,
reads ``--config file.yaml`` first (unknown keys are an error, naming the key and the file),
then applies the flags given on the command line. ``save_config`` writes the resolved
config next to the outputs; it is also embedded in the exported checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

__all__ = ["PretrainConfig", "MLSConfig", "BAMConfig", "parse_config", "parse_recipe_config", "load_config", "save_config", "config_to_dict"]

C = TypeVar("C")


@dataclasses.dataclass
class PretrainConfig:
    """Fields shared by every pretraining recipe (defaults: the papers' ResNet-50 COCO runs)."""

    # data
    data: str = "scenes"  # scenes | coco:/path | hf:<repo> | folder:/path
    split: str = "train"
    image_size: int = 224
    crop_scale_min: float = 0.2  # RandomResizedCrop scale (min, 1.0)
    hue_mode: str = "yiq"  # yiq (one colour matrix, fast) | hsv (torchvision's exact hue)
    augment_on: str = "cpu"  # cpu: PIL in the workers | gpu: workers only decode, views rendered on the training device
    decode_max_side: int | None = None  # gpu path: decode big JPEGs at a reduced DCT scale, never below this side
    num_workers: int = 8
    # model
    backbone: str = "resnet50"
    pretrained: bool = False
    channels_last: bool = True
    compile: bool = False
    # optimisation (SGD, cosine; lr = base_lr x total_batch / 256)
    epochs: int = 200
    max_steps: int | None = None  # length of the run in optimiser steps (overrides epochs)
    stop_after: int | None = None  # end this run at that step, schedule unchanged (time limits); --resume latest goes on
    batch_size: int = 256  # per process
    base_lr: float = 0.03
    weight_decay: float = 1e-4
    sgd_momentum: float = 0.9
    warmup_epochs: float = 0.0
    grad_accum_steps: int = 1
    clip_grad_norm: float | None = None
    mixed_precision: str | None = None  # no | bf16 | fp16; None = the accelerate launch config
    seed: int = 0
    # outputs
    output_dir: str = "outputs/pretrain"
    log_every: int = 50
    save_every: int = 1000  # optimiser steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 2
    resume: str | None = None  # "latest" or a checkpoint folder
    export: bool = True
    export_tag: str | None = None
    # after training: linear probe of the backbone vs a random-init one (the main job)
    probe_data: str | None = None
    probe_image_size: int = 224
    probe_epochs: int = 100
    probe_pool: str = "avgmax"

    def lr(self, num_processes: int) -> float:
        """The papers' scaling rule: ``base_lr x total batch / 256``."""
        return self.base_lr * self.batch_size * num_processes * self.grad_accum_steps / 256


@dataclasses.dataclass
class MLSConfig(PretrainConfig):
    """MLS (MoCo v2 + two queues + BCE). ``mls_weight: 0`` trains plain MoCo v2."""

    output_dir: str = "outputs/mls"
    base_lr: float = 0.3
    queue_size: int = 4096
    dim: int = 256
    hidden_dim: int = 2048
    ema_momentum: float = 0.995
    ema_schedule: str = "constant"  # constant | cosine (m -> 1, as BYOL)
    temperature: float = 0.2
    topk: int = 20
    mls_weight: float = 0.5
    loss_form: str = "bce"  # bce | bce_pos | knn_softmax
    label_source: str = "g"  # g | z | both
    shuffle_bn: bool = True


@dataclasses.dataclass
class BAMConfig(PretrainConfig):
    """BAM + IA-CLoss on SimSiam. ``ia_weight: 0`` and ``blocks: 1`` train plain SimSiam."""

    output_dir: str = "outputs/bam"
    base_lr: float = 0.05  # x (batch x blocks) / 256: the x4 counts the blocks
    blocks: int = 4
    overlap: float = 0.2
    proj_dim: int = 2048
    proj_hidden_dim: int = 2048
    pred_hidden_dim: int = 512
    ia_weight: float = 4.0
    ia_temperature: float = 0.3
    ia_base_temperature: float = 0.07
    ia_form: str = "in"
    stop_grad: bool | None = None  # None: no detach with IA-CLoss (authors' code), detach without (SimSiam)
    shuffle: bool = True

    def lr(self, num_processes: int) -> float:
        return super().lr(num_processes) * self.blocks


# -- parsing ------------------------------------------------------------------------------

def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _convert(name: str, tp, value: Any) -> Any:
    """Coerce a YAML / CLI value to the field's type, or raise ValueError naming the field."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ValueError(f"config field {name!r} may not be empty")
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if inner is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if inner is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if inner is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ValueError(f"config field {name!r} expects {getattr(inner, '__name__', inner)}, got {value!r}")


def _fields(cls) -> dict[str, tuple[Any, Any]]:
    """field name -> (resolved type, default)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(cls)}


def load_config(cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """Defaults of ``cls``, then the YAML file, then ``overrides``; unknown keys are errors."""
    fields = _fields(cls)
    values: dict[str, Any] = {}
    sources: list[tuple[str, dict]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a mapping of field: value")
        sources.append((str(path), loaded))
    if overrides:
        sources.append(("the command line", overrides))
    for where, mapping in sources:
        for key, value in mapping.items():
            name = str(key).replace("-", "_")
            if name not in fields:
                raise ValueError(f"unknown config key {key!r} in {where}; valid keys: {', '.join(sorted(fields))}")
            values[name] = _convert(name, fields[name][0], value)
    return cls(**values)


def parse_config(cls: type[C], argv: Sequence[str] | None = None, default_config: str | Path | None = None,
                 description: str | None = None) -> C:
    """Build ``cls`` from ``--config`` and ``--field-name value`` flags (``argv`` = sys.argv[1:]).

    ``default_config`` is the YAML used when no ``--config`` is given (it is printed, not hidden).
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML file overriding the defaults")
    for name, (_, default) in _fields(cls).items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS, metavar="VALUE",
                            help=f"(default: {default!r})")
    args = vars(parser.parse_args(argv))
    path = args.pop("config") or default_config
    return load_config(cls, path, args)


def parse_recipe_config(cls: type[C], argv: Sequence[str] | None, default_config: str | Path, description: str | None = None) -> C:
    """:func:`parse_config` for a recipe with a default YAML, telling the user when it is used."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        print(f"no --config given: using {default_config} (the embedded quick run)")
    return parse_config(cls, argv, default_config=default_config, description=description)


def config_to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
