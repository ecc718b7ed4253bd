"""What each method is, in one place: which intra-image and image-text terms it trains, whether it needs captions,
its display name. Config choices, the method registry (:mod:`tvdim.methods`) and every error message that names
methods read this table. Pure data (no torch), so the bottom layer (config) can use it.

Adding an image-text loss: its per-pair function in :mod:`tvdim.losses`, one entry in
``tvdim.methods.contrastive.INTER_ROWS``, its name in ``INTER_TERMS`` below and the presets that use it here.
"""
from __future__ import annotations

from dataclasses import dataclass

# amdim: AMDIM's multi-scale NCE between two views; simclr: SimCLR's NT-Xent on a projection of the global feature
INTRA_TERMS = ("amdim", "simclr", "none")
# rank: bidirectional ranking (margin) loss; nce: symmetric InfoNCE; siglip: SigLIP's pairwise sigmoid loss
INTER_TERMS = ("rank", "nce", "siglip", "none")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    intra: str  # one of INTRA_TERMS
    inter: str  # one of INTER_TERMS
    display: str
    trained: bool = True  # False: the encoder at initialisation (random)
    supervised: bool = False  # trained with labels instead of the terms above
    learn_scale: bool = False  # nce: CLIP's learnable logit scale (init 1/0.07, at most 100) instead of 1/temperature

    @property
    def needs_text(self) -> bool:
        return self.inter != "none"


METHOD_SPECS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("amdim", "amdim", "none", "AMDIM (two views, multi-scale NCE)"),
    MethodSpec("tvdim", "amdim", "rank", "TVDIM (AMDIM + image-text ranking loss)"),
    MethodSpec("tvdim-nce", "amdim", "nce", "TVDIM-NCE (AMDIM + image-text InfoNCE)"),
    MethodSpec("clip", "none", "nce", "CLIP-style image-text InfoNCE (learnable logit scale)", learn_scale=True),
    MethodSpec("simclr", "simclr", "none", "SimCLR (two views, NT-Xent on a projection head)"),
    MethodSpec("slip", "simclr", "nce", "SLIP (SimCLR + CLIP, Mu et al. 2021)", learn_scale=True),
    MethodSpec("siglip", "none", "siglip", "SigLIP-style image-text sigmoid loss"),
    MethodSpec("random", "amdim", "none", "random initialisation (the floor)", trained=False),
    MethodSpec("supervised", "none", "none", "supervised (labels; upper bound)", supervised=True),
)}


def method_spec(name: str) -> MethodSpec:
    """The spec of ``name``; ``KeyError`` naming the valid methods when unknown."""
    if name not in METHOD_SPECS:
        raise KeyError(f"unknown method '{name}'; valid methods: {', '.join(METHOD_SPECS)}")
    return METHOD_SPECS[name]


def resolve_terms(name: str, intra: str = "", inter: str = "", learn_scale: str = "auto") -> tuple[str, str, bool]:
    """The terms a run trains: the preset's, with ``loss.intra_term`` / ``loss.inter_term`` (when not empty) and
    ``loss.learn_scale`` (``auto`` = the preset's; ``on`` / ``off``) applied: ``(intra, inter, learn_scale)``."""
    spec = method_spec(name)
    scale = spec.learn_scale if learn_scale == "auto" else learn_scale == "on"
    return intra or spec.intra, inter or spec.inter, scale


def text_methods() -> str:
    """The methods with a text tower, for messages: ``"tvdim, tvdim-nce or clip"``."""
    names = [s.name for s in METHOD_SPECS.values() if s.needs_text]  # presets; loss.inter_term can add text to any
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


__all__ = ["MethodSpec", "METHOD_SPECS", "INTRA_TERMS", "INTER_TERMS", "method_spec", "resolve_terms", "text_methods"]
