"""The torch device serving and training run on: its own module so serving never imports training."""

from __future__ import annotations

import torch

from closetai import ClosetAIError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ClosetAIError("--device cuda asked for, but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise ClosetAIError(f"unknown device {name!r} (cpu, cuda or auto)")
    return torch.device(name)
