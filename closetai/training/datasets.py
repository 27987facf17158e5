"""What the training loop feeds on: readers' samples as tensors (TrainDataset with flip and photometric
jitter, AugmentedDataset for the strong augmentation), the batch collate, and the shard sampler and
worker seeding used under torchrun. closetai.training.train re-exports these names.
"""

from __future__ import annotations

import random

import numpy as np
import torch


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
