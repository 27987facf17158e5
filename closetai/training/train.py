"""Training loop (torchvision references/detection style): checkpoints, resume, time budget,
augmentation, loss log, best model kept by validation mask AP.

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


class TrainDataset(torch.utils.data.Dataset):
    """Reader -> (CHW float tensor in [0, 1], target tensors) with flip and photometric jitter.

    Scale jitter happens inside the model: its transform picks a random short side per batch.
    """

    def __init__(self, reader, flip: bool = True, photometric: bool = True):
        self.reader, self.flip, self.photometric = reader, flip, photometric

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int):
        rgb, t = self.reader[index]
        image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255)
        boxes = torch.from_numpy(t["boxes"]).float()
        masks = torch.from_numpy(t["masks"]).to(torch.uint8)
        if self.flip and random.random() < 0.5:
            image, masks = image.flip(-1), masks.flip(-1)
            w = image.shape[-1]
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
        if self.photometric:
            image = _photometric(image)
        keep = (boxes[:, 2] > boxes[:, 0] + 1) & (boxes[:, 3] > boxes[:, 1] + 1)
        return image, {"boxes": boxes[keep], "labels": torch.from_numpy(t["labels"])[keep], "masks": masks[keep]}


class AugmentedDataset(torch.utils.data.Dataset):
    """closetai.training.data.augment.StrongAugment samples as tensors: a fresh random draw at every access.

    Each DataLoader worker has its own torch seed; a per-worker count of draws makes every access differ
    even with persistent workers, which keep their seed from one epoch to the next."""

    def __init__(self, augment):
        self.augment = augment
        self._draws = 0

    def __len__(self) -> int:
        return len(self.augment)

    def __getitem__(self, index: int):
        self._draws += 1
        rng = np.random.default_rng([torch.initial_seed() % 2**63, index, self._draws])
        sample = self.augment(index, rng)
        image = torch.from_numpy(np.ascontiguousarray(sample.rgb)).permute(2, 0, 1).float().div_(255)
        boxes = torch.from_numpy(sample.boxes).float()
        keep = (boxes[:, 2] > boxes[:, 0] + 1) & (boxes[:, 3] > boxes[:, 1] + 1)
        return image, {"boxes": boxes[keep], "labels": torch.from_numpy(sample.labels)[keep],
                       "masks": torch.from_numpy(sample.masks.astype(np.uint8))[keep]}


def _photometric(image: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation jitter (+-20%), applied in random order."""
    ops = [0, 1, 2]
    random.shuffle(ops)
    for op in ops:
        f = random.uniform(0.8, 1.2)
        if op == 0:
            image = image * f
        elif op == 1:
            image = (image - image.mean()) * f + image.mean()
        else:
            grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)
            image = (image - grey) * f + grey
    return image.clamp_(0, 1)


def collate(batch):
    return tuple(zip(*batch, strict=True))


class ShardSampler(torch.utils.data.Sampler[int]):
    """One rank's disjoint share of a shuffled epoch: DistributedSampler's job, in a different order.

    Every rank draws the one-process DataLoader's order (a RandomSampler on the same seeded generator,
    which advances each epoch, so each epoch is reshuffled without set_epoch) and keeps every
    world_size-th index from its rank on. The tail that does not divide evenly is dropped, so shards
    never overlap and all ranks run the same number of steps. torch's DistributedSampler shuffles with
    seed + epoch instead, so a one-process torchrun run would not see a plain run's order; this one does.
    """

    def __init__(self, size: int, rank: int, world_size: int, generator: torch.Generator):
        self.order = torch.utils.data.RandomSampler(range(size), generator=generator)
        self.rank, self.world_size = rank, world_size
        self.num_samples = size // world_size

    def __iter__(self):
        order = list(self.order)
        return iter(order[self.rank:self.num_samples * self.world_size:self.world_size])

    def __len__(self) -> int:
        return self.num_samples


def _reseed_augmentation(rank: int, worker_id: int) -> None:
    """worker_init_fn under torchrun: DataLoader seeds worker k from a base seed drawn from the shared
    generator, the same on every rank, so rank 1's worker k would flip and jitter in step with rank 0's.
    On rank 0 this is the seed DataLoader already set."""
    random.seed(torch.initial_seed() + rank * 2**32)


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
    if args.init:
        model, init_meta = model_for_training(args.init, list(classes), args.trainable_stages, args.config)
        config = init_meta["config"]
        model = model.to(device)
    else:
        config = {**DEFAULT_CONFIG, **args.config}
        model = build_model(len(classes) + 1, config, pretrained_backbone=args.pretrained_backbone,
                            trainable_stages=args.trainable_stages).to(device)
    model.transform.min_size = tuple(config["train_min_size"])
    params = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr * args.batch_size / 16  # global batch: DDP averages the ranks' gradients
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    if args.augment == "strong":
        from closetai.training.data.augment import StrongAugment

        if args.person_label is None:
            raise ClosetAIError("--augment strong needs person silhouettes (a CCP reader with person=True)")
        dataset = AugmentedDataset(StrongAugment(reader, args.person_label))
    else:
        dataset = TrainDataset(reader, args.flip, args.photometric)
    common = {"num_workers": args.workers, "collate_fn": collate, "persistent_workers": args.workers > 0,
              "generator": torch.Generator().manual_seed(args.seed)}
    if procs.distributed:
        if args.batch_size % procs.world_size:
            raise ClosetAIError(f"--batch-size {args.batch_size} is the global batch and must split evenly "
                                f"over {procs.world_size} processes")
        if len(reader) < procs.world_size:
            raise ClosetAIError(f"{len(reader)} training images cannot be shared by {procs.world_size} processes")
        batch = args.batch_size // procs.world_size
        sampler = ShardSampler(len(reader), procs.rank, procs.world_size, common["generator"])
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler,
                                             drop_last=len(sampler) > batch,
                                             worker_init_fn=partial(_reseed_augmentation, procs.rank), **common)
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                             drop_last=len(reader) > args.batch_size, **common)
    ckpt_dir = Path(args.checkpoint_dir)
    if procs.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_path = ckpt_dir / "train_log.jsonl"
    start_epoch, step, elapsed, best = 0, 0, 0.0, {"mask_AP": -1.0}
    if selector is not None and args.init and not args.resume and procs.main:
        # The starting point is a candidate too: a fine-tune that makes nothing better ships nothing new.
        scored = selector.score(args.init)
        best = {"mask_AP": scored["clean_mask_AP"], "epoch": -1, "select": scored, "metrics": None, "start": scored}
        selector.baseline = scored
        with log_path.open("a") as f:
            f.write(json.dumps({"epoch": -1, "select": scored}) + "\n")
        print(json.dumps({"epoch": -1, "select": scored}), flush=True)
    if args.resume:
        ckpt = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step, elapsed, best = ckpt["epoch"] + 1, ckpt["step"], ckpt["elapsed"], ckpt["best"]
        if selector is not None:
            selector.baseline = best.get("start")
    # Forward and backward go through `net`; evaluation, checkpoints and the model file use `model`.
    net = (DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
           if procs.distributed else model)
    use_amp = args.amp and device.type == "cuda"
    iters_per_epoch = max(1, len(loader))
    total_iters = args.epochs * iters_per_epoch
    if args.max_iters:
        total_iters = min(total_iters, args.max_iters)

    def progress_now() -> float:
        p = step / total_iters
        if args.time_budget:
            p = max(p, elapsed / args.time_budget)
        return p

    def finish_epoch(epoch: int, final: bool, images_seen: int) -> None:
        if procs.distributed:
            images_seen = int(_sum_over_processes(torch.tensor([images_seen], device=device)).item())
        if procs.main:
            write_epoch(epoch, final, images_seen)
        if procs.distributed:
            dist.barrier()  # the others wait while rank 0 evaluates and saves

    def write_epoch(epoch: int, final: bool, images_seen: int) -> None:
        nonlocal best
        record: dict[str, Any] = {"epoch": epoch, "step": step, "elapsed_s": round(elapsed, 1),
                                  "images": images_seen, "processes": procs.world_size}
        if selector is not None and (final or (epoch + 1) % args.eval_every == 0):
            candidate = ckpt_dir / "candidate.pt"
            _save(model, args, config, classes, best, step, procs.world_size, out=candidate)
            scored = selector.score(candidate)
            model.train()
            record.update(select=scored)
            if selector.better(scored, best.get("select")):
                best = {"mask_AP": scored["clean_mask_AP"], "epoch": epoch, "select": scored, "metrics": None}
                _save(model, args, config, classes, best, step, procs.world_size)
        elif val_reader is not None and (final or (epoch + 1) % args.eval_every == 0):
            model.transform.min_size = (config["min_size"],)
            metrics = evaluate_model(model, val_reader, device, classes)
            model.transform.min_size = tuple(config["train_min_size"])
            model.train()
            record.update(mask_AP=metrics["mask"]["AP"], box_AP=metrics["box"]["AP"])
            if metrics["mask"]["AP"] > best["mask_AP"]:
                best = {"mask_AP": metrics["mask"]["AP"], "epoch": epoch, "metrics": metrics}
                _save(model, args, config, classes, best, step, procs.world_size)
        elif val_reader is None and final:
            best = {"mask_AP": None, "epoch": epoch, "metrics": None}
            _save(model, args, config, classes, best, step, procs.world_size)
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        tmp = ckpt_dir / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "step": step, "elapsed": elapsed, "best": best, "args": asdict(args)}, tmp)
        os.replace(tmp, ckpt_dir / "last.pt")
        print(json.dumps(record), flush=True)

    net.train()
    epoch = start_epoch
    done = progress_now() >= 1.0
    while not done:
        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not (args.progress and procs.main),
                   mininterval=5)
        t0 = time.time()
        images_seen = 0
        for images, targets in bar:
            images_seen += len(images)
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
            for g in optimizer.param_groups:
                g["lr"] = lr * _lr_factor(step, progress_now(), args.warmup_iters)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = net(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise ClosetAIError(f"loss became {loss.item()} at step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            step += 1
            elapsed += time.time() - t0
            t0 = time.time()
            if procs.distributed and args.time_budget:
                # Every rank runs on rank 0's clock: the same LR, and the same step to stop at (a rank
                # that stopped alone would leave the others waiting in all-reduce for ever).
                elapsed = _from_rank0(elapsed, device)
            if step % 20 == 0:
                names = ["loss", *losses]
                values = torch.stack([loss.detach().float(), *(v.detach().float() for v in losses.values())])
                if procs.distributed:  # the mean over the global batch, not rank 0's share of it
                    values = _sum_over_processes(values) / procs.world_size
                values = values.tolist()
                if procs.main:
                    with log_path.open("a") as f:
                        f.write(json.dumps({"step": step, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                                            **{n: round(v, 4) for n, v in zip(names, values, strict=True)}})
                                + "\n")
                bar.set_postfix(loss=f"{values[0]:.3f}")
            if progress_now() >= 1.0:
                done = True
                break
        finish_epoch(epoch, final=done, images_seen=images_seen)
        epoch += 1
    return {"best": best, "steps": step, "epochs": epoch - start_epoch, "elapsed_s": round(elapsed, 1),
            "device": str(device), "out": args.out, "processes": procs.world_size, "rank": procs.rank}


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
