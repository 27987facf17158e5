"""Training loop (torchvision references/detection style): checkpoints, resume, time budget,
augmentation, loss log, best model kept by validation mask AP.

`train` sets up a `_Run` (model, optimizer, loader), then per epoch `train_one_epoch` and `_end_epoch`:
evaluate on the validation reader or score on the selection split, keep the best model, checkpoint.

Under torchrun (LOCAL_RANK and WORLD_SIZE in the environment) the same loop runs data-parallel:
one process per GPU (or CPU process with gloo), DistributedDataParallel, each rank a disjoint shard
of every epoch, --batch-size the global batch; rank 0 alone logs, evaluates and writes files.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from closetai import ClosetAIError
from closetai.training.datasets import (  # noqa: F401  (re-exported: their old home)
    AugmentedDataset,
    ShardSampler,
    TrainDataset,
    _photometric,
    _reseed_augmentation,
    collate,
)
from closetai.training.evaluate import CocoEvaluator
from closetai.vision.detections import Detections
from closetai.vision.device import pick_device
from closetai.vision.model import DEFAULT_CONFIG, build_model, model_for_training, save_model


@dataclass
class TrainArgs:
    data: str
    out: str = "models/closetai-ccp15.pt"
    val: str | None = None
    epochs: int = 24
    time_budget: float | None = None  # seconds of training; schedule follows whichever ends first
    batch_size: int = 16  # images per optimizer step, over all processes under torchrun
    lr: float = 0.02  # for batch 16; scaled linearly
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    workers: int = 4  # data loader workers per process
    device: str = "auto"
    seed: int = 0
    amp: bool = False  # bf16 autocast on CUDA; off by default (fp32/TF32 is the tested path)
    eval_every: int = 4  # epochs
    checkpoint_dir: str = "checkpoints"
    resume: str | None = None
    pretrained_backbone: bool = True
    trainable_stages: int = 7
    flip: bool = True
    photometric: bool = True
    config: dict[str, Any] = field(default_factory=dict)
    max_iters: int | None = None  # for smoke tests
    taxonomy: str = ""
    progress: bool = True
    init: str | None = None  # start from this model file's weights (classes remapped: closetai.vision.model.remap_classes)
    augment: str = "basic"  # "strong": closetai.training.data.augment (copy-paste, mosaics, large-scale jitter, turns)
    person_label: int | None = None  # the reader's id of `person` (its silhouettes feed copy-paste)


@dataclass(frozen=True)
class Processes:
    """This process's place in a torchrun launch; a plain run is rank 0 of 1 without a process group."""

    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _join_torchrun(device: torch.device) -> tuple[Processes, torch.device]:
    """Start the process group when torchrun launched us (it sets LOCAL_RANK and WORLD_SIZE)."""
    if "LOCAL_RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Processes(), device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ClosetAIError(f"torchrun started local rank {local_rank} but only {torch.cuda.device_count()} "
                                "GPU(s) are visible; lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    # Rank 0 evaluates alone while the others wait at a barrier: a DeepFashion2-sized validation set
    # takes longer than NCCL's default 10 minute timeout.
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=2),
                            device_id=device if device.type == "cuda" else None)
    return Processes(dist.get_rank(), dist.get_world_size(), True), device


def _from_rank0(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.item()


def _sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(values)
    return values


@torch.inference_mode()
def evaluate_model(model, reader, device, classes, batch_size: int = 8, score_thresh: float = 0.05) -> dict:
    """Mask/box AP of a model (eval mode) over a reader, at the reader's image resolution."""
    model.eval()
    evaluator = CocoEvaluator(classes)
    for start in range(0, len(reader), batch_size):
        items = [reader[i] for i in range(start, min(start + batch_size, len(reader)))]
        images = [torch.from_numpy(np.array(r)).permute(2, 0, 1).float().div_(255).to(device)
                  for r, _ in items]
        outputs = model(images)
        for k, ((rgb, target), out) in enumerate(zip(items, outputs, strict=True)):
            keep = out["scores"] >= score_thresh
            dets = Detections(out["boxes"][keep].float().cpu().numpy(), out["scores"][keep].float().cpu().numpy(),
                              out["labels"][keep].cpu().numpy(), tuple(classes),
                              masks=(out["masks"][keep, 0] > 0.5).cpu().numpy())
            evaluator.process(start + k + 1, rgb.shape[0], rgb.shape[1], target, dets)
    return evaluator.evaluate()


def _lr_factor(step: int, progress: float, warmup: int) -> float:
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    warm = 0.001 + (1 - 0.001) * warm
    return warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(args: TrainArgs, reader, val_reader=None, selector=None) -> dict[str, Any]:
    """Train; returns a summary. Writes the best model (by val mask AP, else the last) to args.out.

    selector: instead of val_reader, choose the epoch with closetai.training.selection.Selection (a split cut from
    the training photos, clean and under framing conditions), so that the reported split chooses nothing.
    Under torchrun every process calls this; only rank 0 writes args.out, checkpoints and the log,
    and the summary's "rank" says which process returned it.
    """
    procs, device = _join_torchrun(pick_device(args.device))
    try:
        return _train(args, reader, val_reader, procs, device, selector)
    finally:
        if procs.distributed:
            dist.destroy_process_group()


@dataclass
class _Run:
    """One training run's model, optimizer and where it writes, and what a checkpoint carries on
    (step, elapsed seconds, best so far). Forward and backward go through `net` (DDP under torchrun);
    evaluation, checkpoints and the model file use `model`."""

    args: TrainArgs
    procs: Processes
    device: torch.device
    model: torch.nn.Module
    config: dict
    classes: tuple[str, ...]
    params: list
    optimizer: torch.optim.Optimizer
    lr: float
    ckpt_dir: Path
    net: torch.nn.Module | None = None
    total_iters: int = 1
    step: int = 0
    elapsed: float = 0.0
    best: dict = field(default_factory=lambda: {"mask_AP": -1.0})

    @property
    def log_path(self) -> Path:
        return self.ckpt_dir / "train_log.jsonl"

    def progress(self) -> float:
        """Share of the schedule done: by steps, or by the time budget when that ends first."""
        p = self.step / self.total_iters
        if self.args.time_budget:
            p = max(p, self.elapsed / self.args.time_budget)
        return p

    def save(self, out: str | os.PathLike | None = None) -> None:
        _save(self.model, self.args, self.config, self.classes, self.best, self.step, self.procs.world_size, out=out)

    def log(self, record: dict) -> None:
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _train(args: TrainArgs, reader, val_reader, procs: Processes, device: torch.device,
           selector=None) -> dict[str, Any]:
    # Augmentation and RPN/ROI sampling differ per rank (rank 0 keeps the plain run's seed);
    # DDP copies rank 0's initial weights to the others, and the shared loader generator keeps
    # every rank's epoch order the same.
    random.seed(args.seed + procs.rank)
    np.random.seed(args.seed + procs.rank)
    torch.manual_seed(args.seed + procs.rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    classes = tuple(reader.classes)
    model, config = _build(args, classes, device)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr * args.batch_size / 16  # global batch: DDP averages the ranks' gradients
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    loader = _loader(args, reader, procs)
    run = _Run(args, procs, device, model, config, classes, params, optimizer, lr, Path(args.checkpoint_dir))
    if procs.main:
        run.ckpt_dir.mkdir(parents=True, exist_ok=True)
    start_epoch = 0
    if selector is not None and args.init and not args.resume and procs.main:
        _score_start(run, selector)
    if args.resume:
        start_epoch = _resume(run, selector)
    run.net = (DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
               if procs.distributed else model)
    run.total_iters = args.epochs * max(1, len(loader))
    if args.max_iters:
        run.total_iters = min(run.total_iters, args.max_iters)

    run.net.train()
    epoch = start_epoch
    done = run.progress() >= 1.0
    while not done:
        images_seen, done = train_one_epoch(run, loader, epoch)
        _end_epoch(run, epoch, done, images_seen, val_reader, selector)
        epoch += 1
    return {"best": run.best, "steps": run.step, "epochs": epoch - start_epoch, "elapsed_s": round(run.elapsed, 1),
            "device": str(device), "out": args.out, "processes": procs.world_size, "rank": procs.rank}


def _build(args: TrainArgs, classes: tuple[str, ...], device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The model to train (new, or from args.init with its classes remapped) at its training sizes, and its config."""
    if args.init:
        model, init_meta = model_for_training(args.init, list(classes), args.trainable_stages, args.config)
        config = init_meta["config"]
        model = model.to(device)
    else:
        config = {**DEFAULT_CONFIG, **args.config}
        model = build_model(len(classes) + 1, config, pretrained_backbone=args.pretrained_backbone,
                            trainable_stages=args.trainable_stages).to(device)
    model.transform.min_size = tuple(config["train_min_size"])
    return model, config


def _loader(args: TrainArgs, reader, procs: Processes) -> torch.utils.data.DataLoader:
    """Augmented batches of the training reader: shuffled, or this rank's shard under torchrun."""
    if args.augment == "strong":
        from closetai.training.data.augment import StrongAugment

        if args.person_label is None:
            raise ClosetAIError("--augment strong needs person silhouettes (a CCP reader with person=True)")
        dataset = AugmentedDataset(StrongAugment(reader, args.person_label))
    else:
        dataset = TrainDataset(reader, args.flip, args.photometric)
    common = {"num_workers": args.workers, "collate_fn": collate, "persistent_workers": args.workers > 0,
              "generator": torch.Generator().manual_seed(args.seed)}
    if not procs.distributed:
        return torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                           drop_last=len(reader) > args.batch_size, **common)
    if args.batch_size % procs.world_size:
        raise ClosetAIError(f"--batch-size {args.batch_size} is the global batch and must split evenly "
                            f"over {procs.world_size} processes")
    if len(reader) < procs.world_size:
        raise ClosetAIError(f"{len(reader)} training images cannot be shared by {procs.world_size} processes")
    batch = args.batch_size // procs.world_size
    sampler = ShardSampler(len(reader), procs.rank, procs.world_size, common["generator"])
    return torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=len(sampler) > batch,
                                       worker_init_fn=partial(_reseed_augmentation, procs.rank), **common)


def _score_start(run: _Run, selector) -> None:
    """The starting point is a candidate too: a fine-tune that makes nothing better ships nothing new."""
    scored = selector.score(run.args.init)
    run.best = {"mask_AP": scored["clean_mask_AP"], "epoch": -1, "select": scored, "metrics": None, "start": scored}
    selector.baseline = scored
    run.log({"epoch": -1, "select": scored})
    print(json.dumps({"epoch": -1, "select": scored}), flush=True)


def _resume(run: _Run, selector) -> int:
    """Load the checkpoint at args.resume into the run; -> the epoch to start from."""
    ckpt = torch.load(run.args.resume, map_location=run.device, weights_only=False)
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.step, run.elapsed, run.best = ckpt["step"], ckpt["elapsed"], ckpt["best"]
    if selector is not None:
        selector.baseline = run.best.get("start")
    return ckpt["epoch"] + 1


def train_one_epoch(run: _Run, loader, epoch: int) -> tuple[int, bool]:
    """One pass over the loader, or until the schedule ends; -> (images seen by this process, schedule done)."""
    args, procs, device = run.args, run.procs, run.device
    use_amp = args.amp and device.type == "cuda"
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not (args.progress and procs.main),
               mininterval=5)
    t0 = time.time()
    images_seen = 0
    for images, targets in bar:
        images_seen += len(images)
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        for g in run.optimizer.param_groups:
            g["lr"] = run.lr * _lr_factor(run.step, run.progress(), args.warmup_iters)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            losses = run.net(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise ClosetAIError(f"loss became {loss.item()} at step {run.step}; lower --lr")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, 10.0)
        run.optimizer.step()
        run.step += 1
        run.elapsed += time.time() - t0
        t0 = time.time()
        if procs.distributed and args.time_budget:
            # Every rank runs on rank 0's clock: the same LR, and the same step to stop at (a rank
            # that stopped alone would leave the others waiting in all-reduce for ever).
            run.elapsed = _from_rank0(run.elapsed, device)
        if run.step % 20 == 0:
            _log_losses(run, epoch, loss, losses, bar)
        if run.progress() >= 1.0:
            return images_seen, True
    return images_seen, False


def _log_losses(run: _Run, epoch: int, loss: torch.Tensor, losses: dict[str, torch.Tensor], bar) -> None:
    names = ["loss", *losses]
    values = torch.stack([loss.detach().float(), *(v.detach().float() for v in losses.values())])
    if run.procs.distributed:  # the mean over the global batch, not rank 0's share of it
        values = _sum_over_processes(values) / run.procs.world_size
    values = values.tolist()
    if run.procs.main:
        run.log({"step": run.step, "epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"],
                 **{n: round(v, 4) for n, v in zip(names, values, strict=True)}})
    bar.set_postfix(loss=f"{values[0]:.3f}")


def _end_epoch(run: _Run, epoch: int, final: bool, images_seen: int, val_reader, selector) -> None:
    """Rank 0 evaluates or scores the epoch, keeps the best model and writes the checkpoint; the others wait."""
    if run.procs.distributed:
        images_seen = int(_sum_over_processes(torch.tensor([images_seen], device=run.device)).item())
    if run.procs.main:
        record: dict[str, Any] = {"epoch": epoch, "step": run.step, "elapsed_s": round(run.elapsed, 1),
                                  "images": images_seen, "processes": run.procs.world_size}
        record.update(_keep_best(run, epoch, final, val_reader, selector))
        run.log(record)
        _checkpoint(run, epoch)
        print(json.dumps(record), flush=True)
    if run.procs.distributed:
        dist.barrier()  # the others wait while rank 0 evaluates and saves


def _keep_best(run: _Run, epoch: int, final: bool, val_reader, selector) -> dict[str, Any]:
    """The selection step: on evaluation epochs (every args.eval_every, and the last) score the model on the
    selection split, or evaluate it on val_reader, and save it to args.out when it is the best so far;
    without either, the last epoch is the model. -> the figures for the epoch's log record."""
    due = final or (epoch + 1) % run.args.eval_every == 0
    if selector is not None and due:
        candidate = run.ckpt_dir / "candidate.pt"
        run.save(out=candidate)
        scored = selector.score(candidate)
        run.model.train()
        if selector.better(scored, run.best.get("select")):
            run.best = {"mask_AP": scored["clean_mask_AP"], "epoch": epoch, "select": scored, "metrics": None}
            run.save()
        return {"select": scored}
    if val_reader is not None and due:
        run.model.transform.min_size = (run.config["min_size"],)
        metrics = evaluate_model(run.model, val_reader, run.device, run.classes)
        run.model.transform.min_size = tuple(run.config["train_min_size"])
        run.model.train()
        if metrics["mask"]["AP"] > run.best["mask_AP"]:
            run.best = {"mask_AP": metrics["mask"]["AP"], "epoch": epoch, "metrics": metrics}
            run.save()
        return {"mask_AP": metrics["mask"]["AP"], "box_AP": metrics["box"]["AP"]}
    if val_reader is None and final:
        run.best = {"mask_AP": None, "epoch": epoch, "metrics": None}
        run.save()
    return {}


def _checkpoint(run: _Run, epoch: int) -> None:
    """checkpoint_dir/last.pt, replaced atomically: {model, optimizer, epoch, step, elapsed, best, args}."""
    tmp = run.ckpt_dir / "last.pt.tmp"
    torch.save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "epoch": epoch,
                "step": run.step, "elapsed": run.elapsed, "best": run.best, "args": asdict(run.args)}, tmp)
    os.replace(tmp, run.ckpt_dir / "last.pt")


def _save(model, args: TrainArgs, config: dict, classes: tuple[str, ...], best: dict, step: int,
          processes: int = 1, out: str | os.PathLike | None = None) -> None:
    eval_config = {**config, "min_size": config["min_size"]}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if processes > 1:
        gpu = f"{processes} x {gpu}"
    metadata = {
        "name": Path(args.out).stem, "taxonomy": args.taxonomy, "classes": list(classes),
        "score_threshold": 0.5, "trained": {
            "data": args.data, "date": datetime.now(UTC).strftime("%Y-%m-%d"), "epochs_done": best.get("epoch"),
            "steps": step, "batch_size": args.batch_size, "lr": args.lr, "time_budget_s": args.time_budget,
            "hardware": gpu, "seed": args.seed, "amp_bf16": args.amp, "train_min_size": config["train_min_size"],
            "augmentation": {"flip": args.flip, "photometric": args.photometric, "scale_jitter": True,
                             "strong": args.augment == "strong"},
            "init": args.init, "trainable_stages": args.trainable_stages},
        "evaluation": {"val_during_training": best.get("metrics"), "selection": best.get("select")},
    }
    save_model(model, out or args.out, eval_config, metadata)
