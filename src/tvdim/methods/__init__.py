"""Method registry: ``build_method(cfg, tasks, vocab_size)``."""
from __future__ import annotations

from functools import partial
from typing import Callable

from ..config import Config
from ..errors import ConfigError
from .base import Method, StepOutput
from .contrastive import ContrastiveMethod
from .supervised import SupervisedMethod

_TERMS = {"amdim": (True, "none"), "tvdim": (True, "rank"), "tvdim-nce": (True, "nce"), "clip": (False, "nce"),
          "random": (True, "none")}  # 'random' is never trained: the AMDIM encoder at initialisation

REGISTRY: dict[str, Callable[..., Method]] = {
    name: partial(ContrastiveMethod, name=name, intra=intra, inter=inter) for name, (intra, inter) in _TERMS.items()
}
REGISTRY["supervised"] = SupervisedMethod


def uses_text(name: str) -> bool:
    return _TERMS.get(name, (True, "none"))[1] != "none"


def build_method(cfg: Config, tasks: dict[str, int] | None = None, vocab_size: int | None = None) -> Method:
    """Instantiate ``cfg.train.method``; ``tasks`` = label name -> class count for the online probes."""
    name = cfg.train.method
    if name not in REGISTRY:
        raise ConfigError(f"unknown method '{name}'; valid methods: {', '.join(REGISTRY)}")
    return REGISTRY[name](cfg, tasks or {}, vocab_size)


__all__ = ["Method", "StepOutput", "build_method", "uses_text", "REGISTRY"]
