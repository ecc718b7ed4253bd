"""Export a checkpoint's encoders and load them back: ``tvdim export`` and ``tvdim.from_pretrained``.

An export folder follows huggingface_hub's model-mixin layout, so ``save_pretrained`` / ``from_pretrained`` /
``push_to_hub`` behave as they do for other Hub models:

* ``model.safetensors``: the image encoder (``image_encoder.*``) and, for text methods, the text encoder
  (``text_encoder.*``). No optimiser state, no online probes.
* ``config.json``: export format, the method that trained it, the training step, the image architecture, the input
  normalisation, the text architecture (a pretrained tower's Hugging Face config included) and the full training
  config.
* ``tokenizer.json``: text methods only (``tokenizers`` format; padding and truncation included).
* ``README.md``: the model card (how to load, preprocessing, evaluation results when the run has them, training
  config); ``results.json``: the evaluation results it quotes.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from PIL import Image
from torch import nn

from .config import to_plain
from .data.eval_image import EvalImage
from .data.transforms import MEAN, STD, eval_resize
from .errors import CheckpointError, ConfigError, TvdimError
from .eval.evaluate import markdown_table
from .loading import embed_images, embed_texts, load_method
from .method_spec import METHOD_SPECS
from .models.backbones import BACKBONES, build_image_encoder, get_backbone, image_spec
from .models.hf_text import PretrainedTextEncoder
from .models.text import TextEncoder
from .models.tokenizer import CaptionTokenizer

log = logging.getLogger("tvdim.hub")

FORMAT = "tvdim-export-v1"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
RESULTS = "results.json"
TIMM_WEIGHTS = "timm_backbone.safetensors"  # timm backbones: the backbone alone, in timm's own key layout
EXPORT_FILES = ("config.json", WEIGHTS, TOKENIZER, "README.md", RESULTS, TIMM_WEIGHTS)
PAPER = "https://arxiv.org/abs/2106.01797"


class TvdimModel(nn.Module, PyTorchModelHubMixin, library_name="tvdim", tags=["tvdim", "amdim", "self-supervised"]):
    """Exported encoders: ``image_encoder`` (an encoder of the backbone registry, :mod:`tvdim.models.backbones`),
    ``text_encoder`` and ``tokenizer`` (None for
    image-only methods). The constructor arguments are what ``config.json`` holds (see :func:`export_checkpoint`).

    ``model(x)`` and :meth:`encode_images` give ``[N, n_rkhs]`` image features (r1); :meth:`encode_texts` gives
    caption features. Loads in eval mode.
    """

    def __init__(self, method: str, image: dict, normalization: dict, text: dict | None = None, step: int = 0,
                 training: dict | None = None, tvdim_format: str = FORMAT) -> None:
        super().__init__()
        if tvdim_format != FORMAT:
            raise CheckpointError(f"export format '{tvdim_format}' is not '{FORMAT}'; upgrade tvdim")
        _check_known(method, image, text)
        self.method, self.step, self.text_config, self.training_config = method, step, text, training
        self.image_config, self.normalization = image, normalization
        self.image_encoder = build_image_encoder(image)
        self.text_encoder: TextEncoder | PretrainedTextEncoder | None = None
        if text is not None:
            if text["architecture"] == "huggingface":
                self.text_encoder = PretrainedTextEncoder.from_config(text["backbone"], image["n_rkhs"],
                                                                      text["pooling"], text.get("freeze", False))
            else:
                self.text_encoder = TextEncoder(text["vocab_size"], image["n_rkhs"], text["max_len"], text["dim"],
                                                text["layers"], text["heads"], text["dropout"], text["pooling"])
        self.tokenizer: CaptionTokenizer | None = None
        self.results: dict[str, Any] | None = None

    @property
    def image_size(self) -> int:
        return self.image_encoder.image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` normalised images -> ``[B, n_rkhs]`` features."""
        return self.image_encoder(x).r1

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The evaluation transform (resize, centre crop, normalise): PIL image -> ``[3, S, S]``."""
        return EvalImage(self.image_size)(image)

    def encode_images(self, images: Sequence[Image.Image] | torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return embed_images(self.image_encoder, images, batch_size)

    def encode_texts(self, captions: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        if self.text_encoder is None or self.tokenizer is None:
            raise CheckpointError(f"this encoder was trained with method '{self.method}', which has no text encoder")
        return embed_texts(self.text_encoder, self.tokenizer, captions, batch_size)

    # --- huggingface_hub mixin -------------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        save_model(self, str(save_directory / WEIGHTS), metadata={"format": "pt", "tvdim": FORMAT},
                   force_contiguous=True)
        umask = os.umask(0)  # safetensors writes the file owner-only; give it the usual permissions
        os.umask(umask)
        os.chmod(save_directory / WEIGHTS, 0o666 & ~umask)
        backbone = getattr(self.image_encoder, "backbone_state_dict", None)
        if backbone is not None:
            from safetensors.torch import save_file

            save_file(backbone(), str(save_directory / TIMM_WEIGHTS), metadata={"format": "pt"})
            os.chmod(save_directory / TIMM_WEIGHTS, 0o666 & ~umask)
        if self.tokenizer is not None:
            self.tokenizer.save(save_directory / TOKENIZER)
        if self.results is not None:
            (save_directory / RESULTS).write_text(json.dumps(self.results, indent=2))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None = None, cache_dir: str | Path | None = None,
                         force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None,
                         map_location: str | torch.device = "cpu", strict: bool = True,
                         **model_kwargs: Any) -> "TvdimModel":
        from safetensors.torch import load_model

        folder = Path(model_id)
        if not folder.is_dir():  # a Hub repo id: download the whole folder (needs a network)
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo_id=model_id, revision=revision, cache_dir=cache_dir,
                                            force_download=force_download, token=token,
                                            local_files_only=local_files_only))
        init = {k: v for k, v in model_kwargs.items() if k in cls._hub_mixin_init_parameters}
        model = cls(**init)
        try:
            load_model(model, str(folder / WEIGHTS), strict=strict)
        except (RuntimeError, OSError, ValueError) as exc:
            raise CheckpointError(f"{folder / WEIGHTS}: weights do not match config.json: {str(exc)[:300]}") from exc
        except Exception as exc:  # safetensors' SafetensorError: a truncated or corrupt file
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise CheckpointError(f"cannot read weights {folder / WEIGHTS} (truncated or corrupt file; export it "
                                  f"again): {type(exc).__name__}: {text}") from exc
        if model.text_config is not None:
            if not (folder / TOKENIZER).is_file():
                raise CheckpointError(f"{folder} holds a text encoder but no {TOKENIZER}")
            model.tokenizer = CaptionTokenizer.from_file(folder / TOKENIZER, model.text_config["max_len"])
        if (folder / RESULTS).is_file():
            model.results = json.loads((folder / RESULTS).read_text())
        return model.to(map_location).eval()

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        return ModelCard(model_card(self))


TEXT_ARCHITECTURES = ("transformer", "huggingface")


def _check_known(method: Any, image: Any, text: Any) -> None:
    """:class:`CheckpointError` naming the config.json key and value this version cannot build (another
    architecture or method must not load silently as AMDIM)."""
    if method not in METHOD_SPECS:
        raise CheckpointError(f"config.json: unknown method={method!r}; this tvdim knows {', '.join(METHOD_SPECS)}")
    if not isinstance(image, dict):
        raise CheckpointError(f"config.json: image must be an object, got {image!r}")
    arch = image.get("architecture", "amdim")
    try:
        get_backbone(str(arch))
    except ConfigError as exc:
        raise CheckpointError(f"config.json: unknown image.architecture={arch!r}; this tvdim builds "
                              f"{', '.join(sorted(BACKBONES))} or a timm model") from exc
    feature = image.get("feature", "r1")
    if feature != "r1":
        raise CheckpointError(f"config.json: unknown image.feature={feature!r}; this tvdim gives r1")
    if text is not None:
        tarch = text.get("architecture") if isinstance(text, dict) else text
        if tarch not in TEXT_ARCHITECTURES:
            raise CheckpointError(f"config.json: unknown text.architecture={tarch!r}; this tvdim builds "
                                  f"{', '.join(TEXT_ARCHITECTURES)}")


def _text_config(method: Any, cfg: Any) -> dict[str, Any] | None:
    enc, t = method.text_encoder, cfg.text
    if enc is None:
        return None
    if isinstance(enc, PretrainedTextEncoder):
        return {"architecture": "huggingface", "backbone": enc.backbone_config(), "source": t.pretrained,
                "max_len": t.max_len, "pooling": t.pooling, "freeze": t.freeze}
    return {"architecture": "transformer", "vocab_size": enc.embed.num_embeddings, "max_len": t.max_len,
            "dim": t.dim, "layers": t.layers, "heads": t.heads, "dropout": t.dropout, "pooling": t.pooling}


def model_from_checkpoint(loaded: Any) -> TvdimModel:
    """A :class:`TvdimModel` holding the encoders of a checkpoint read by :func:`tvdim.api.load_method`."""
    cfg, m = loaded.config, loaded.config.model
    size = m.image_size
    model = TvdimModel(
        method=cfg.train.method, step=loaded.step, training=to_plain(cfg),
        image={**image_spec(m), "n_rkhs": loaded.method.image_encoder.n_rkhs, "feature": "r1"},
        normalization={"mean": list(MEAN), "std": list(STD), "resize": eval_resize(size), "crop": size,
                       "interpolation": "bicubic", "input": "RGB scaled to [0, 1], then (x - mean) / std"},
        text=_text_config(loaded.method, cfg))
    model.image_encoder.load_state_dict(loaded.method.image_encoder.state_dict())
    if model.text_encoder is not None:
        model.text_encoder.load_state_dict(loaded.method.text_encoder.state_dict())
        model.tokenizer = loaded.tokenizer
    return model.to(next(loaded.method.parameters()).device).eval()


def find_results(checkpoint: Path, method: str, step: int) -> Path | None:
    """``results.json`` of ``tvdim evaluate`` next to the run (``<run>/eval/`` or ``<run>/``) for this checkpoint."""
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    for cand in (run / "eval" / RESULTS, run / RESULTS):
        if not cand.is_file():
            continue
        try:
            res = json.loads(cand.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(res, dict) and res.get("method", method) == method and res.get("step", step) == step:
            return cand
        log.warning("not quoting %s: it is not for this checkpoint (%s step %s)", cand, method, step)
    return None


def export_checkpoint(checkpoint: str | Path, out: str | Path, overwrite: bool = False,
                      results: str | Path | None = None) -> Path:
    """Write the encoders of ``checkpoint`` into ``out`` (see module docstring) and return ``out``.

    ``results``: a ``results.json`` for the model card (default: one found next to the run for the same method and
    step). A non-empty ``out`` is refused unless ``overwrite``; overwriting replaces only the files an export
    writes.
    """
    out, checkpoint = Path(out), Path(checkpoint)
    if out.exists() and not out.is_dir():
        raise TvdimError(f"--out {out} is a file, not a folder")
    replace = out.is_dir() and any(out.iterdir())
    if replace and not overwrite:
        raise TvdimError(f"--out {out} is not empty; use --overwrite to replace the export in it")
    loaded = load_method(checkpoint)
    model = model_from_checkpoint(loaded)
    res_path = Path(results) if results else find_results(checkpoint, loaded.config.train.method, loaded.step)
    if res_path is not None:
        try:
            model.results = json.loads(res_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TvdimError(f"cannot read results file {res_path}: {exc}") from exc
    _write_export(model, out, replace)
    return out


def _write_export(model: TvdimModel, out: Path, replace: bool) -> None:
    """Write the export into a temporary sibling folder, then move it into place: a failed write (full disk)
    leaves neither a half-written export nor a damaged previous one. ``replace``: ``out`` holds an export whose
    files are replaced (other files in it are kept)."""
    out = out.absolute()
    tmp = out.parent / f".{out.name}.tmp-export-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        model.save_pretrained(tmp)
        if replace:
            for name in EXPORT_FILES:
                if not (tmp / name).exists():
                    (out / name).unlink(missing_ok=True)
            for p in sorted(tmp.iterdir()):
                os.replace(p, out / p.name)
            tmp.rmdir()
        else:
            if out.is_dir():
                out.rmdir()  # empty (checked above)
            os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TvdimError(f"cannot export to {out}: no space left on {out.parent}; nothing was written"
                             + (" (the previous export is kept)" if replace else "")) from exc
        raise TvdimError(f"cannot export to {out}: {exc.strerror or exc}"
                         + (f": {exc.filename}" if exc.filename else "") + "; nothing was written") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise


def from_pretrained(path: str | Path, device: str | torch.device = "cpu", **kwargs: Any) -> TvdimModel:
    """Load an export folder (or a Hub repo id, which needs a network): a :class:`TvdimModel` in eval mode with
    ``image_encoder``, ``text_encoder`` and ``tokenizer`` (None for image-only methods)."""
    p = Path(path)
    if p.exists():
        conf = p / "config.json"
        if not p.is_dir() or not conf.is_file() or not (p / WEIGHTS).is_file():
            raise CheckpointError(f"{p} is not a tvdim export (expected config.json and {WEIGHTS}); make one with "
                                  "tvdim export CHECKPOINT --out DIR")
        try:
            fmt = json.loads(conf.read_text()).get("tvdim_format")
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise CheckpointError(f"{conf} is not a readable JSON object: {exc}") from exc
        if fmt != FORMAT:
            raise CheckpointError(f"{p} is not a tvdim export (config.json has tvdim_format={fmt!r}, "
                                  f"expected '{FORMAT}')")
    return TvdimModel.from_pretrained(str(path), map_location=device, **kwargs)


def model_card(model: TvdimModel) -> str:
    """The README.md of an export: front matter, usage, preprocessing, evaluation, training config."""
    img = model.image_config
    size, n = model.image_size, model.image_encoder.n_rkhs
    norm = model.normalization
    text = model.text_config
    meta = {"library_name": "tvdim", "pipeline_tag": "image-feature-extraction",
            "tags": ["tvdim", "amdim", "self-supervised", f"method-{model.method}"]}
    if text is None:
        tower = "It has no text encoder (the method trains on images alone)."
    elif text["architecture"] == "huggingface":
        tower = (f"The text encoder is the pretrained Hugging Face model `{text.get('source', '')}` "
                 f"({'frozen' if text.get('freeze') else 'fine-tuned'}), {text['pooling']}-pooled into a projection "
                 f"to {n} dimensions; its tokenizer is `tokenizer.json`.")
    else:
        tower = (f"The text encoder is a {text['layers']}-layer Transformer of width {text['dim']} trained from "
                 f"scratch with a WordPiece tokenizer of {text['vocab_size']} tokens (`tokenizer.json`).")
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
             f"# tvdim `{model.method}` image encoder", "",
             f"{_describe_image(img, size, n)}, pretrained with method `{model.method}` for {model.step} steps by "
             f"tvdim (Text-enhanced Visual Deep InfoMax, [arXiv 2106.01797]({PAPER})). {tower}", "",
             "## Use", "", "```python", "import tvdim", "",
             'model = tvdim.from_pretrained("PATH_OR_REPO_ID")  # a TvdimModel in eval mode',
             f"feats = model.encode_images([pil_image])         # [N, {n}] image features"]
    if text is not None:
        lines.append(f'tfeats = model.encode_texts(["a caption"])      # [N, {n}] caption features')
    lines += ["```", "", "`tvdim embed PATH images/ --out feats.npy` writes features for a folder, a table or "
              "shards from the command line.", ""]
    lines += _timm_lines(model)
    lines += [f"Preprocessing (done by `encode_images` / `model.preprocess`): resize the shorter side to "
              f"{norm['resize']} px ({norm['interpolation']}), centre crop {norm['crop']} px, scale RGB to [0, 1], "
              f"normalise with mean {norm['mean']} and std {norm['std']}.", "", "## Evaluation", ""]
    lines += _results_lines(model.results)
    lines += ["", "## Training config", "", "```yaml", yaml.safe_dump(model.training_config or {}, sort_keys=False).strip(),
              "```", ""]
    return "\n".join(lines)


def _describe_image(img: dict[str, Any], size: int, n: int) -> str:
    if img.get("family") == "timm":
        return f"A timm `{img['architecture']}` image encoder for {size} px images ({n}-dimensional pooled features)"
    return f"An AMDIM image encoder for {size} px images ({img.get('ndf', '?')} base width, {n}-dimensional features)"


def _timm_lines(model: TvdimModel) -> list[str]:
    """How to load the backbone of a timm export in timm alone (same features as ``encode_images``)."""
    img = model.image_config
    if img.get("family") != "timm":
        return []
    from .models.timm_backbone import timm_kwargs

    extra = "".join(f", {k}={v!r}" for k, v in timm_kwargs(img["architecture"], model.image_size).items())
    return ["## Use in timm", "", f"`{TIMM_WEIGHTS}` holds the backbone alone, in timm's key layout:", "",
            "```python", "import timm", "",
            f'model = timm.create_model("{img["architecture"]}", pretrained=True, num_classes=0{extra},',
            f'                          pretrained_cfg_overlay=dict(file="PATH/{TIMM_WEIGHTS}")).eval()',
            f"feats = model(x)  # [N, {model.image_encoder.n_rkhs}], x preprocessed as below", "```", ""]


def _results_lines(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return ["No evaluation results were found next to the checkpoint (run `tvdim evaluate CHECKPOINT --out "
                "RUN/eval` before exporting, or pass `--results FILE`)."]
    try:
        table = markdown_table({results.get("method", "model"): results})
    except (KeyError, TypeError, ValueError):  # a results file of another layout: quote it as it is
        table = "```json\n" + json.dumps(results, indent=2)[:4000] + "\n```"
    return [f"`tvdim evaluate` of this checkpoint (n_train={results.get('n_train', '?')}, "
            f"n_test={results.get('n_test', '?')}); accuracy and recall in %, full numbers in `results.json`:", "",
            table]


__all__ = ["TvdimModel", "export_checkpoint", "from_pretrained", "model_from_checkpoint", "model_card", "FORMAT"]
