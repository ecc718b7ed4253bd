"""Method registry, built from the spec table of :mod:`tvdim.method_spec`: ``build_method(cfg, tasks, vocab_size)``."""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from ..config import Config, resolve_size
from ..errors import ConfigError
from ..method_spec import METHOD_SPECS, resolve_terms
from .base import Method, StepOutput
from .contrastive import ContrastiveMethod
from .supervised import SupervisedMethod


def method_class(name: str) -> Callable[..., Method]:
    """The constructor of a method of the spec table (method_spec.py): the supervised one, or the contrastive one
    with its terms ('random' is never trained: the encoder at initialisation)."""
    spec = METHOD_SPECS[name]
    if spec.supervised:
        return SupervisedMethod
    return partial(ContrastiveMethod, name=name)


def uses_text(method: str | Config) -> bool:
    """Whether a method (a preset name) or a run (its config: ``loss.inter_term`` may add or remove text)
    trains an image-text term."""
    if isinstance(method, Config):
        name = method.train.method
        if name not in METHOD_SPECS or METHOD_SPECS[name].supervised:
            return False
        return resolve_terms(name, method.loss.intra_term, method.loss.inter_term)[1] != "none"
    return method in METHOD_SPECS and METHOD_SPECS[method].needs_text


def build_method(cfg: Config, tasks: dict[str, int] | None = None, vocab_size: int | None = None) -> Method:
    """Instantiate ``cfg.train.method``; ``tasks`` = label name -> class count for the online probes."""
    name = cfg.train.method
    if name not in METHOD_SPECS:
        raise ConfigError(f"unknown method '{name}'; valid methods: {', '.join(METHOD_SPECS)}")
    if not (cfg.model.ndf and cfg.model.n_rkhs and cfg.model.n_depth):  # model.size not resolved by a trainer
        cfg = resolve_size(cfg, cfg.train.device != "cpu" and torch.cuda.is_available())[0]
    return method_class(name)(cfg, tasks or {}, vocab_size)


__all__ = ["Method", "StepOutput", "build_method", "method_class", "uses_text"]
