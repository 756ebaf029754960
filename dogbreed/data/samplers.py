"""Evaluation under DDP: each validation/test image counted exactly once.

Lightning's default for a distributed run is ``DistributedSampler``, which pads every shard to the same length
with duplicates of the first samples (9 test images on 2 ranks: 10 evaluated, one twice), so synced metrics are
slightly off. :class:`UnpaddedDistributedSampler` gives each rank a disjoint, unpadded shard; the torchmetrics
states are summed across ranks at epoch end, so the metrics equal a single-process run on the same data. Ranks
may then run a different number of evaluation batches, which is safe because evaluation has no per-step
collective (metrics are logged per epoch).
"""

from __future__ import annotations

from typing import Iterator, Sized

import torch.distributed as dist
from torch.utils.data import DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank r gets samples r, r + world, r + 2*world, ... in order: no shuffling, no padding, no drop.

    A ``DistributedSampler`` subclass, so Lightning keeps it instead of replacing it with a padding one.
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)  # type: ignore[arg-type]
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def evaluation_sampler(dataset: Sized) -> UnpaddedDistributedSampler | None:
    """The unpadded sampler when this process is one of several ranks, else None (plain sequential order)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return UnpaddedDistributedSampler(dataset)
    return None
