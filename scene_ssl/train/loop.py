"""The one pretraining loop every recipe shares: a plain loop over Accelerate.

Every Accelerate call is visible here: ``prepare``, ``accumulate``, ``backward``,
``save_state`` / ``load_state`` (through :mod:`.checkpoint`), ``log``. The method module
owns the algorithm (stop-gradient, momentum encoder, queues); this file owns data,
optimisation, checkpoints, logging and the export.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data import EpochShuffleSampler, ViewDataset, collate_decoded, collate_views, load_dataset
from ..transforms import DeviceViewRenderer, ViewNormalizer
from ..transforms.multiview import MultiViewTransform
from .checkpoint import TrainState, find_checkpoint, save_checkpoint
from .config import PretrainConfig, config_to_dict, save_config
from .schedule import cosine_lr, cosine_momentum

__all__ = ["pretrain", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint written before it is intact."""


def _trackers() -> list[str]:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return ["tensorboard"]


def _skipped_files(batch: dict, warned: set[str]) -> int:
    """Warn once per unreadable file; return how many this batch skipped."""
    names = batch.get("skipped") or []
    for name in names:
        if name not in warned:
            warned.add(name)
            warnings.warn(f"skipping unreadable image: {name}", stacklevel=2)
    return len(names)


def pretrain(
    cfg: PretrainConfig,
    build_model: Callable[[PretrainConfig], nn.Module],
    build_transform: Callable[[PretrainConfig], MultiViewTransform],
    *,
    accelerator: Accelerator | None = None,
) -> dict[str, Any]:
    """Train ``build_model(cfg)`` on views from ``build_transform(cfg)``; return a summary.

    The summary holds the final ``step``, the last logged ``losses``, the last
    ``checkpoint``, the trained ``model`` (unwrapped), the ``export`` folder and, when
    ``cfg.probe_data`` is set, the ``probe`` metrics of the trained and of a randomly
    initialised backbone.
    """
    out_dir = Path(cfg.output_dir)
    if accelerator is None:
        accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.grad_accum_steps,
            log_with=_trackers(),
            project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
            # pinned batches, copied to the GPU without blocking the host
            dataloader_config=DataLoaderConfiguration(non_blocking=True),
        )
    elif accelerator.gradient_accumulation_steps != cfg.grad_accum_steps:
        raise ValueError(f"the accelerator accumulates {accelerator.gradient_accumulation_steps} batches but "
                         f"grad_accum_steps is {cfg.grad_accum_steps}: build it with gradient_accumulation_steps="
                         f"{cfg.grad_accum_steps}")
    set_seed(cfg.seed)
    if accelerator.device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if accelerator.is_main_process:
        save_config(cfg, out_dir / "config.yaml")

    # -- everything a config can get wrong fails here, before any data work --------------
    if cfg.augment_on not in ("cpu", "gpu"):
        raise ValueError(f"augment_on must be 'cpu' or 'gpu', got {cfg.augment_on!r}")
    on_device = cfg.augment_on == "gpu"
    transform = build_transform(cfg)
    if on_device and not getattr(transform, "pipelines", None):
        raise ValueError("augment_on=gpu needs ViewPipeline-based views (not arbitrary callables)")
    model = build_model(cfg)  # checks the method's hyperparameters (topk <= queue size, ...)

    # -- data ----------------------------------------------------------------------------
    with accelerator.main_process_first():  # the embedded scenes are generated once
        data = load_dataset(cfg.data, cfg.split)
    dataset = ViewDataset(data, transform, seed=cfg.seed, render="device" if on_device else "cpu",
                          max_side=cfg.decode_max_side)
    if len(dataset) < cfg.batch_size * accelerator.num_processes:
        raise ValueError(f"{cfg.data} has {len(dataset)} images, fewer than one global batch "
                         f"({cfg.batch_size} x {accelerator.num_processes} processes)")
    sampler = EpochShuffleSampler(len(dataset), seed=cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, num_workers=cfg.num_workers,
        collate_fn=collate_decoded if on_device else collate_views, pin_memory=accelerator.device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,  # no re-fork per epoch; the epoch is in shared memory
    )

    # -- model and optimiser -------------------------------------------------------------
    data_cfg = timm.data.resolve_model_data_config(model.encoder.model)
    if on_device:  # workers decode; crop, colour, blur, solarize, flip happen here, batched
        to_views = DeviceViewRenderer(transform.pipelines, data_cfg["mean"], data_cfg["std"]).to(accelerator.device)
    else:  # workers rendered uint8 views; only the normalisation is left
        normalizer = ViewNormalizer(data_cfg["mean"], data_cfg["std"]).to(accelerator.device)

        def to_views(batch):
            return [normalizer(v.permute(0, 3, 1, 2)) for v in batch["views"].unbind(0)]  # V x (B, 3, S, S)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = cfg.lr(accelerator.num_processes)
    # fused SGD on CUDA: one kernel for the whole update instead of one per parameter
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay,
                                fused=True if accelerator.device.type == "cuda" else None)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    method = accelerator.unwrap_model(model)
    forward = torch.compile(model) if cfg.compile else model
    base_ema = getattr(method, "momentum", None)

    def set_ema(step: int) -> None:
        """The EMA momentum of the optimiser step after ``step``. The method updates its momentum
        encoder at every forward, so with accumulation each micro-batch uses m^(1/n): the online
        weights do not change within a step, and n updates with m^(1/n) are one update with m."""
        if base_ema is None:
            return
        m = cosine_momentum(step, total_steps, base_ema) if getattr(cfg, "ema_schedule", "constant") == "cosine" else base_ema
        method.momentum = m ** (1.0 / cfg.grad_accum_steps)

    steps_per_epoch = len(loader) // cfg.grad_accum_steps
    if steps_per_epoch == 0:
        raise ValueError("fewer batches than grad_accum_steps: lower batch_size or grad_accum_steps")
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    end_step = min(total_steps, cfg.stop_after) if cfg.stop_after else total_steps

    state = TrainState()
    accelerator.register_for_checkpointing(state)
    ckpt_dir = out_dir / "checkpoints"
    if cfg.resume:
        path = find_checkpoint(cfg.resume, ckpt_dir)
        accelerator.load_state(str(path))
        accelerator.print(f"resumed from {path} at step {state.step}")
    if accelerator.is_main_process:
        accelerator.init_trackers("pretrain", config={k: v for k, v in config_to_dict(cfg).items()
                                                      if isinstance(v, (int, float, str, bool))})

    accelerator.print(
        f"{type(method).__name__} on {cfg.backbone}: {len(dataset)} images, {steps_per_epoch} steps/epoch, "
        f"{total_steps} steps, lr {lr:.4g} (base {cfg.base_lr} x {cfg.batch_size * accelerator.num_processes * cfg.grad_accum_steps}/256), "
        f"{accelerator.num_processes} process(es), {accelerator.device}, mixed precision {accelerator.mixed_precision}"
    )
    bar = tqdm(total=end_step, initial=state.step, disable=not accelerator.is_local_main_process, desc="pretrain")
    nonfinite = torch.zeros((), dtype=torch.bool, device=accelerator.device)
    warned: set[str] = set()
    skipped = 0
    last_logs: dict[str, float] = {}
    last_ckpt: Path | None = None
    t_window, images_window = time.perf_counter(), 0  # throughput since the previous log

    def check_finite() -> None:
        if nonfinite.item():  # CPU-GPU sync point: only at log and checkpoint steps
            raise NonFiniteLossError(
                f"non-finite loss at or before step {state.step}; stopping. The last good checkpoint is "
                f"{last_ckpt or 'none (no checkpoint was written yet)'}; lower the learning rate or try bf16 instead of fp16"
            )

    model.train()
    set_ema(state.step)
    while state.step < end_step:
        epoch = state.step // steps_per_epoch
        epoch_loader = loader
        done_in_epoch = (state.step % steps_per_epoch) * cfg.grad_accum_steps
        if done_in_epoch:  # resuming mid-epoch: the same sampler order, minus what was done
            epoch_loader = accelerator.skip_first_batches(loader, done_in_epoch)
        # Accelerate re-applies its loader's own epoch counter when iteration starts: set it
        # on the loader we iterate (it forwards to the sampler). The dataset is set directly,
        # as Accelerate's sharded loaders do not forward the epoch to it.
        epoch_loader.set_epoch(epoch)
        dataset.set_epoch(epoch)
        for batch in epoch_loader:
            skipped += _skipped_files(batch, warned)
            with accelerator.accumulate(model):
                views = to_views(batch)  # V x (B, 3, S, S) normalised, channels-last
                out = forward({"views": views})
                loss = out["loss"]
                nonfinite |= ~torch.isfinite(loss.detach())
                accelerator.backward(loss)
                if cfg.clip_grad_norm and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, cfg.clip_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            images_window += views[0].shape[0]
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(state.step, total_steps, lr, warmup_steps)
            set_ema(state.step)
            bar.update(1)

            if state.step % cfg.log_every == 0 or state.step == end_step:
                check_finite()
                logs = {k: float(v.detach()) for k, v in out.items()}  # sync point, every log_every steps
                logs["lr"] = optimizer.param_groups[0]["lr"]
                logs["skipped_images"] = float(accelerator.reduce(torch.tensor(float(skipped), device=accelerator.device), "sum"))
                now = time.perf_counter()
                logs["images_per_s"] = images_window * accelerator.num_processes / (now - t_window)
                t_window, images_window = now, 0
                accelerator.log(logs, step=state.step)
                if accelerator.is_main_process:  # a plain-text log for tools without tensorboard
                    with open(out_dir / "train_log.jsonl", "a") as f:
                        f.write(json.dumps({"step": state.step, **logs}) + "\n")
                bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss")})
                last_logs = logs
            if cfg.save_every and state.step % cfg.save_every == 0 and state.step < end_step:
                check_finite()
                last_ckpt = save_checkpoint(accelerator, ckpt_dir, state.step, cfg.keep_checkpoints)
            if state.step >= end_step:
                break
    bar.close()
    check_finite()
    if accelerator.num_processes > 1:
        # DDP broadcasts buffers at the start of each forward, so the last step's BN running
        # statistics are each process's own: end with rank 0's everywhere, as in the checkpoint
        for buffer in method.buffers():
            torch.distributed.broadcast(buffer.data, src=0)
    last_ckpt = save_checkpoint(accelerator, ckpt_dir, state.step, cfg.keep_checkpoints)
    summary: dict[str, Any] = {"step": state.step, "losses": last_logs, "checkpoint": str(last_ckpt), "model": method}
    if state.step < total_steps:  # stopped early on purpose: no export or probe of a partial run
        accelerator.print(f"stopped at step {state.step} of {total_steps}; continue with --resume latest")
        accelerator.end_training()
        return summary
    if skipped:
        accelerator.print(f"skipped {skipped} unreadable image(s) in this process (see the warnings above)")

    if cfg.export:
        if accelerator.is_main_process:
            from ..export import save_pretrained

            export_dir = out_dir / "export"
            save_pretrained(
                method.encoder.model, export_dir, tag=cfg.export_tag or _default_tag(cfg, method),
                train_config=config_to_dict(cfg), metrics=None,
            )
            accelerator.print(f"exported the backbone to {export_dir} "
                              f"(timm.create_model('local-dir:{export_dir.resolve()}', pretrained=True))")
        summary["export"] = str(out_dir / "export")
    accelerator.wait_for_everyone()

    if cfg.probe_data and accelerator.is_main_process:
        from ..probe.compare import compare_with_random_init

        summary["probe"] = compare_with_random_init(method.encoder, cfg, device=accelerator.device,
                                                    out_dir=out_dir, print_fn=accelerator.print)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _default_tag(cfg: PretrainConfig, method: nn.Module) -> str:
    data = cfg.data.split(":", 1)[0].replace("/", "_")
    return f"{type(method).__name__.lower()}_{data}"
