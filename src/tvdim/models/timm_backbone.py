"""Any timm image model as a tvdim backbone (``model.backbone=resnet18``, ``vit_small_patch16_224``, ...).

The representation (``r1``) is timm's pooled output (``num_classes=0``), as lightly, solo-learn and SLIP evaluate.
The local maps of AMDIM's multi-scale terms come from the last two stages of the backbone (timm's
``forward_intermediates``; patch tokens as a grid for ViTs): ``r5`` (coarser) from the last stage, ``r7`` (finer)
from the one before, each projected to the feature size by an AMDIM-style 1x1 head (training only; the exported
timm weights hold the backbone alone). Our extension, recorded in docs/METHOD.md.

ViTs get ``img_size = model.image_size``; at 64 px and below their patch is ``image_size // 8`` (an 8x8 grid).
``model.init=PATH`` loads timm-format weights (``.safetensors`` or a torch file) into the backbone; nothing is
downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from .blocks import FakeRKHSConvNet
from .image_encoder import EncoderOutput, ImageEncoder

HEAD_PREFIXES = ("fc.", "head.", "classifier.", "head_dist.", "last_linear.")  # classifier weights of a file


def is_timm_model(name: str) -> bool:
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a base dependency
        return False
    return bool(timm.is_model(name))


def timm_kwargs(name: str, image_size: int) -> dict[str, Any]:
    """Extra ``timm.create_model`` arguments for ``name`` at ``image_size`` (ViTs: image and patch size)."""
    if name.startswith(("vit_", "deit_", "deit3_", "eva02_")):
        kw: dict[str, Any] = {"img_size": image_size}
        if image_size <= 64:
            kw["patch_size"] = max(2, image_size // 8)
        return kw
    return {}


class TimmEncoder(ImageEncoder):
    """``body``: the timm model (``num_classes=0``); ``local5`` / ``local7``: 1x1 heads on the last two stages."""

    def __init__(self, name: str, image_size: int, use_bn: bool = False) -> None:
        super().__init__()
        import timm

        self.name, self.image_size = name, image_size
        self.create_kwargs = timm_kwargs(name, image_size)
        try:
            self.body = timm.create_model(name, pretrained=False, num_classes=0, **self.create_kwargs)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"model.backbone={name}: timm cannot build it at model.image_size={image_size}: "
                              f"{str(exc).splitlines()[0][:200]}") from exc
        self.n_rkhs = int(self.body.num_features)
        with torch.no_grad():
            was = self.body.training
            self.body.eval()
            try:
                _, (c7, c5) = self._stages(torch.zeros(1, 3, image_size, image_size))
            except Exception as exc:  # noqa: BLE001 - a size the architecture cannot take, reported as such
                raise ConfigError(f"model.backbone={name} cannot run at model.image_size={image_size}: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
            self.body.train(was)
        self.local5 = FakeRKHSConvNet(c5.shape[1], self.n_rkhs, use_bn)
        self.local7 = FakeRKHSConvNet(c7.shape[1], self.n_rkhs, use_bn)

    def load_init(self, path: str | Path) -> None:
        """``model.init``: start the backbone from a timm-format weights file."""
        load_timm_weights(self.body, path)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone alone in timm's key layout (the 1x1 training heads left out)."""
        return timm_state_dict(self)

    def _stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        final, maps = self.body.forward_intermediates(x, indices=2, intermediates_only=False)
        return final, list(maps)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"encoder for {self.image_size}px expects [B, 3, {self.image_size}, {self.image_size}] "
                             f"images, got {list(x.shape)}; set model.image_size or resize the input")
        if not self.want_local:  # SimCLR / CLIP-style terms read only the pooled feature
            return EncoderOutput(self.body(x), None, None)
        final, (m7, m5) = self._stages(x)
        r1 = self.body.forward_head(final, pre_logits=True)
        return EncoderOutput(r1, self.local5(m5), self.local7(m7))


def load_timm_weights(body: torch.nn.Module, path: str | Path) -> None:
    """Load a timm-format weights file into ``body`` (classifier weights in the file are ignored; a backbone
    tensor missing from the file, or of another shape, is a :class:`CheckpointError` naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model.init: no such weights file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    except Exception as exc:  # noqa: BLE001 - unreadable / truncated file of either kind
        raise CheckpointError(f"model.init: cannot read {path}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    try:
        missing, _ = body.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"model.init: {path} does not fit the backbone: {str(exc)[:300]}") from exc
    if missing:
        raise CheckpointError(f"model.init: {path} lacks {len(missing)} backbone tensors (e.g. {', '.join(missing[:3])})")


def timm_state_dict(encoder: TimmEncoder) -> dict[str, torch.Tensor]:
    """The backbone alone, in timm's own key layout (what ``timm.create_model(..., pretrained_cfg_overlay=
    dict(file=PATH), num_classes=0)`` loads)."""
    return {k: v.detach().contiguous().cpu() for k, v in encoder.body.state_dict().items()}


__all__ = ["TimmEncoder", "is_timm_model", "timm_kwargs", "load_timm_weights", "timm_state_dict"]
