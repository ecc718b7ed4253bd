"""tvdim: Text-enhanced Visual Deep InfoMax — pretrain image encoders from noisy image-text pairs.

The top-level names load lazily (PEP 562): ``import tvdim.losses`` imports the losses and torch, not the trainer,
the data readers or the export code.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Config": "tvdim.config", "load_config": "tvdim.config",
    "build_method": "tvdim.methods",
    "pretrain": "tvdim.train.trainer",
    "evaluate": "tvdim.eval.evaluate",
    "load_method": "tvdim.api", "load_encoder": "tvdim.api", "load_text_encoder": "tvdim.api",
    "load_model": "tvdim.api", "embed_images": "tvdim.api", "embed_texts": "tvdim.api",
    "from_pretrained": "tvdim.hub", "export_checkpoint": "tvdim.hub", "TvdimModel": "tvdim.hub",
}
__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from .api import embed_images, embed_texts, load_encoder, load_method, load_model, load_text_encoder
    from .config import Config, load_config
    from .eval.evaluate import evaluate
    from .hub import TvdimModel, export_checkpoint, from_pretrained
    from .methods import build_method
    from .train.trainer import pretrain


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tvdim' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
