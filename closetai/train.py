"""Training loop (torchvision references/detection style): checkpoints, resume, time budget,
augmentation, loss log, best model kept by validation mask AP.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from closetai import ClosetAIError
from closetai.detections import Detections
from closetai.evaluate import CocoEvaluator
from closetai.model import DEFAULT_CONFIG, build_model, save_model


@dataclass
class TrainArgs:
    data: str
    out: str = "models/closetai-ccp15.pt"
    val: str | None = None
    epochs: int = 24
    time_budget: float | None = None  # seconds of training; schedule follows whichever ends first
    batch_size: int = 16
    lr: float = 0.02  # for batch 16; scaled linearly
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    workers: int = 4
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


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ClosetAIError("--device cuda asked for, but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise ClosetAIError(f"unknown device {name!r} (cpu, cuda or auto)")
    return torch.device(name)


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


def train(args: TrainArgs, reader, val_reader=None) -> dict[str, Any]:
    """Train; returns a summary. Writes the best model (by val mask AP, else the last) to args.out."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    classes = tuple(reader.classes)
    config = {**DEFAULT_CONFIG, **args.config}
    model = build_model(len(classes) + 1, config, pretrained_backbone=args.pretrained_backbone,
                        trainable_stages=args.trainable_stages).to(device)
    model.transform.min_size = tuple(config["train_min_size"])
    params = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr * args.batch_size / 16
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    loader = torch.utils.data.DataLoader(
        TrainDataset(reader, args.flip, args.photometric), batch_size=args.batch_size, shuffle=True,
        num_workers=args.workers, collate_fn=collate, drop_last=len(reader) > args.batch_size,
        persistent_workers=args.workers > 0, generator=torch.Generator().manual_seed(args.seed))
    ckpt_dir = Path(args.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_path = ckpt_dir / "train_log.jsonl"
    start_epoch, step, elapsed, best = 0, 0, 0.0, {"mask_AP": -1.0}
    if args.resume:
        ckpt = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step, elapsed, best = ckpt["epoch"] + 1, ckpt["step"], ckpt["elapsed"], ckpt["best"]
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

    def finish_epoch(epoch: int, final: bool) -> None:
        nonlocal best
        record: dict[str, Any] = {"epoch": epoch, "step": step, "elapsed_s": round(elapsed, 1)}
        if val_reader is not None and (final or (epoch + 1) % args.eval_every == 0):
            model.transform.min_size = (config["min_size"],)
            metrics = evaluate_model(model, val_reader, device, classes)
            model.transform.min_size = tuple(config["train_min_size"])
            model.train()
            record.update(mask_AP=metrics["mask"]["AP"], box_AP=metrics["box"]["AP"])
            if metrics["mask"]["AP"] > best["mask_AP"]:
                best = {"mask_AP": metrics["mask"]["AP"], "epoch": epoch, "metrics": metrics}
                _save(model, args, config, classes, best, step)
        elif val_reader is None and final:
            best = {"mask_AP": None, "epoch": epoch, "metrics": None}
            _save(model, args, config, classes, best, step)
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        tmp = ckpt_dir / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "step": step, "elapsed": elapsed, "best": best, "args": asdict(args)}, tmp)
        os.replace(tmp, ckpt_dir / "last.pt")
        print(json.dumps(record), flush=True)

    model.train()
    epoch = start_epoch
    done = progress_now() >= 1.0
    while not done:
        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not args.progress, mininterval=5)
        t0 = time.time()
        for images, targets in bar:
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
            for g in optimizer.param_groups:
                g["lr"] = lr * _lr_factor(step, progress_now(), args.warmup_iters)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = model(images, targets)
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
            if step % 20 == 0:
                with log_path.open("a") as f:
                    f.write(json.dumps({"step": step, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                                        "loss": round(loss.item(), 4),
                                        **{k: round(v.item(), 4) for k, v in losses.items()}}) + "\n")
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if progress_now() >= 1.0:
                done = True
                break
        finish_epoch(epoch, final=done)
        epoch += 1
    return {"best": best, "steps": step, "epochs": epoch - start_epoch, "elapsed_s": round(elapsed, 1),
            "device": str(device), "out": args.out}


def _save(model, args: TrainArgs, config: dict, classes: tuple[str, ...], best: dict, step: int) -> None:
    eval_config = {**config, "min_size": config["min_size"]}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    metadata = {
        "name": Path(args.out).stem, "taxonomy": args.taxonomy, "classes": list(classes),
        "score_threshold": 0.5, "trained": {
            "data": args.data, "date": datetime.now(UTC).strftime("%Y-%m-%d"), "epochs_done": best.get("epoch"),
            "steps": step, "batch_size": args.batch_size, "lr": args.lr, "time_budget_s": args.time_budget,
            "hardware": gpu, "seed": args.seed, "amp_bf16": args.amp, "train_min_size": config["train_min_size"],
            "augmentation": {"flip": args.flip, "photometric": args.photometric, "scale_jitter": True}},
        "evaluation": {"val_during_training": best.get("metrics")},
    }
    save_model(model, args.out, eval_config, metadata)
