"""The image-backbone registry: one entry per architecture, one encoder contract for every consumer.

An image encoder is an :class:`ImageEncoder` (an ``nn.Module``) with ``image_size`` (input side in pixels), ``n_rkhs`` (feature size) and
``forward(x: [B, 3, S, S]) -> EncoderOutput(r1, r5, r7)``: ``r1`` ``[B, n_rkhs]`` is the global feature (the
representation that is evaluated and exported); ``r5`` ``[B, n_rkhs, h, w]`` and ``r7`` ``[B, n_rkhs, h', w']`` are
the coarser and finer local feature maps that AMDIM's multi-scale terms compare with (5x5 and 7x7 for AMDIM).

Adding a backbone is one module with one decorated builder::

    @register_backbone("mynet", spec=lambda m: {"image_size": m.image_size, "n_rkhs": m.n_rkhs, "width": ...})
    def build_mynet(image: dict) -> ImageEncoder: ...

``spec`` turns the run's :class:`~tvdim.config.ModelConfig` into the plain ``image`` dict that an export's
config.json holds (``architecture`` is added); the builder makes the encoder from that dict alone, so training,
checkpoints and exports build the same module. ``model.backbone=NAME`` selects it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import register
from .encoder import AmdimEncoder
from .image_encoder import EncoderOutput, ImageEncoder


@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[[dict[str, Any]], ImageEncoder]  # config.json's ``image`` dict -> encoder
    spec: Callable[[ModelConfig], dict[str, Any]]  # the run's model config -> that dict (without ``architecture``)


BACKBONES: dict[str, Backbone] = {}


def register_backbone(name: str, spec: Callable[[ModelConfig], dict[str, Any]]
                      ) -> Callable[[Callable[[dict[str, Any]], ImageEncoder]], Callable[[dict[str, Any]], ImageEncoder]]:
    """Decorator: register ``build(image_dict) -> encoder`` under ``name`` (``model.backbone=name``)."""
    def add(build: Callable[[dict[str, Any]], ImageEncoder]) -> Callable[[dict[str, Any]], ImageEncoder]:
        register(BACKBONES, name, Backbone(name, build, spec), "backbone")
        return build
    return add


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``; any other name timm knows is a timm backbone (models/timm_backbone.py)."""
    if name in BACKBONES:
        return BACKBONES[name]
    from .timm_backbone import is_timm_model

    if is_timm_model(name):
        return Backbone(name, _build_timm, _timm_spec)
    raise ConfigError(f"unknown model.backbone '{name}'; valid backbones: {', '.join(sorted(BACKBONES))} or any "
                      "timm model name (timm.list_models())")


def _timm_spec(m: ModelConfig) -> dict[str, Any]:
    return {"family": "timm", "image_size": m.image_size, "use_bn": m.use_bn}


def _build_timm(image: dict[str, Any]) -> ImageEncoder:
    from .timm_backbone import TimmEncoder

    return TimmEncoder(str(image["architecture"]), int(image["image_size"]), bool(image.get("use_bn", False)))


def image_spec(model: ModelConfig) -> dict[str, Any]:
    """config.json's ``image`` dict for a run's model config: ``{"architecture": name, ...}``."""
    return {"architecture": model.backbone, **get_backbone(model.backbone).spec(model)}


def build_image_encoder(image: dict[str, Any] | ModelConfig) -> ImageEncoder:
    """The encoder of an ``image`` dict (an export's config.json) or of a run's :class:`ModelConfig`, with the
    backbone's own initialisation (``model.init`` is a training run's start: :func:`load_initial_weights`)."""
    if isinstance(image, ModelConfig):
        image = image_spec(image)
    return get_backbone(str(image.get("architecture", "amdim"))).build(image)


def load_initial_weights(encoder: ImageEncoder, path: str) -> None:
    """``model.init``: start a fresh training run from a weights file in the backbone's own format (timm's for
    timm backbones). Checkpoints and exports hold their weights, so loading them never reads this file."""
    load_init = getattr(encoder, "load_init", None)
    if load_init is None:
        raise ConfigError(f"model.init is for timm backbones; {type(encoder).__name__} has no weights file format")
    load_init(path)


@register_backbone("amdim", spec=lambda m: {"image_size": m.image_size, "ndf": m.ndf, "n_rkhs": m.n_rkhs,
                                            "n_depth": m.n_depth, "use_bn": m.use_bn})
def build_amdim(image: dict[str, Any]) -> ImageEncoder:
    """The AMDIM encoder (32 / 64 / 128 px; models/encoder.py)."""
    return AmdimEncoder(image["image_size"], image["ndf"], image["n_rkhs"], image["n_depth"], image["use_bn"])


__all__ = ["ImageEncoder", "EncoderOutput", "Backbone", "BACKBONES", "register_backbone", "get_backbone", "image_spec",
           "build_image_encoder", "load_initial_weights"]
