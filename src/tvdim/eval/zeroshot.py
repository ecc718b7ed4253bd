"""Zero-shot classification with the text tower (CLIP's recipe): no labelled training image is used.

Each class name (made readable: ``StorageTanks`` -> ``storage tanks``) is put through every prompt template
(``eval.zeroshot_templates``; ``{}`` stands for the name), the prompts are embedded by the text encoder, each
embedding L2-normalised, averaged over templates and normalised again: one ``[D]`` vector per class. An image is
assigned the class whose vector has the highest cosine with its r1 feature.

Class names come from the evaluated data itself: a source's ``tasks`` / ``classes`` (built-in data, image-folder
sub-folder names, torchvision ``classes``), or a ``classes.json`` list beside the split's files (WebDataset
shards, a caption table). Label ``i`` is ``names[i]``. The discovery is :func:`tvdim.data.classes.class_names`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..data.classes import class_names  # noqa: F401 - one discovery, shared with training
from ..loading import embed_texts
from .metrics import accuracy_scores


def readable(name: str) -> str:
    """``"StorageTanks"`` / ``"storage_tanks"`` / ``"storage-tanks"`` -> ``"storage tanks"``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name)).replace("_", " ").replace("-", " ")
    return " ".join(spaced.split()).lower()


@torch.no_grad()
def class_embeddings(text_encoder: Any, tokenizer: Any, names: Sequence[str],
                     templates: Sequence[str]) -> torch.Tensor:
    """``[C, D]`` unit vectors: per class, the normalised mean of its normalised prompt embeddings."""
    if not names or not templates:
        raise ValueError("need at least one class name and one template")
    prompts = [t.format(readable(n)) for n in names for t in templates]
    emb = F.normalize(embed_texts(text_encoder, tokenizer, prompts).float().cpu(), dim=1)
    return F.normalize(emb.view(len(names), len(templates), -1).mean(1), dim=1)


@torch.no_grad()
def zeroshot_predict(feats: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``feats [N, D]``, ``classes [C, D]`` -> ``[N]`` index of the class with the highest cosine."""
    return (F.normalize(feats.float(), dim=1) @ F.normalize(classes.float(), dim=1).T).argmax(1)


def zeroshot_scores(text_encoder: Any, tokenizer: Any, feats: torch.Tensor, labels: torch.Tensor,
                    names: Sequence[str], templates: Sequence[str]) -> dict[str, float]:
    """Zero-shot ``accuracy`` and ``balanced_accuracy`` over the labelled rows of ``feats`` / ``labels``."""
    pred = zeroshot_predict(feats, class_embeddings(text_encoder, tokenizer, names, templates))
    return accuracy_scores(pred, labels)


__all__ = ["readable", "class_names", "class_embeddings", "zeroshot_predict", "zeroshot_scores"]
