"""Extract frozen features once: the image encoder in eval mode (BatchNorm statistics are never updated)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.eval_image import EvalImage
from ..data.quality import SkipTracker
from ..data.sample import BadSample
from ..errors import DataError
from ..models.backbones import ImageEncoder


@dataclass
class FeatureSet:
    """``feats``: ``[N, D]`` r1 features; ``labels``: task -> ``[N]`` (-1 unknown); ``captions``: N strings (each
    image's first caption, '' when none); ``all_captions``: N lists (every caption of each image)."""

    feats: torch.Tensor
    labels: dict[str, torch.Tensor]
    captions: list[str]
    skipped: dict[str, Any] = field(default_factory=dict)
    all_captions: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.feats.shape[0]


class EvalDataset(Dataset):
    """``(image tensor, labels dict, list of captions)`` with the one evaluation transform
    (:class:`~tvdim.data.eval_image.EvalImage`, also used by ``tvdim embed`` and exports)."""

    def __init__(self, source: Any, image_size: int) -> None:
        self.source, self.tf = source, EvalImage(image_size)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Any:
        s = self.source[i]
        if isinstance(s, BadSample):
            return s
        return self.tf(s.image), dict(s.labels), list(s.captions)


def _collate(items: list) -> list:
    return items


@torch.no_grad()
def extract_features(encoder: ImageEncoder, source: Any, image_size: int, batch_size: int = 256,
                     device: torch.device | str = "cpu", workers: int = 0, max_bad_fraction: float = 0.05,
                     name: str = "") -> FeatureSet:
    """r1 features of every usable sample of a map-style ``source``, in order (the whole set is scored)."""
    encoder.eval()
    tracker = SkipTracker(max_bad_fraction)
    loader = DataLoader(EvalDataset(source, image_size), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate)
    feats, labels, captions = [], [], []
    for items in loader:
        good = []
        for it in items:
            if isinstance(it, BadSample):
                tracker.bad(it.key, it.reason, it.count)
            else:
                tracker.ok()
                good.append(it)
        tracker.check()
        if not good:
            continue
        x = torch.stack([g[0] for g in good]).to(device).contiguous(memory_format=torch.channels_last)
        feats.append(encoder(x).r1.float().cpu())
        labels.extend(g[1] for g in good)
        captions.extend(list(g[2]) for g in good)
    tracker.check(final=True)
    if not feats:
        raise DataError(f"no usable samples in the evaluation set {name or ''}".strip())
    tasks = sorted({t for lab in labels for t in lab})
    lab = {t: torch.tensor([d.get(t, -1) for d in labels]) for t in tasks}
    return FeatureSet(torch.cat(feats), lab, [c[0] if c else "" for c in captions], tracker.summary(), captions)
