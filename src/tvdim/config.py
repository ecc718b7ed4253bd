"""Typed configuration: dataclasses, YAML loading and ``key.sub=value`` command-line overrides.

Every field is documented in README.md ("Config reference"). Unknown keys are errors that list the valid ones.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from .errors import ConfigError
from .method_spec import INTER_TERMS, INTRA_TERMS, METHOD_SPECS

log = logging.getLogger("tvdim.config")
# Keys that were validated but never read, removed: an old config file or checkpoint holding them still loads (the
# key is dropped with a logged note).
REMOVED_KEYS = {"data.caption_noise": "it was never applied (noisy captions: tvdim data corrupt-captions, "
                                      "data.synth_swap)",
                "loss.inter": "the method sets its image-text term (train.method)"}


@dataclass
class DataConfig:
    """Where pretraining / evaluation data come from.

    ``format`` selects the reader: ``synthetic`` (built-in generator), ``csv`` / ``tsv`` / ``jsonl``
    (``path`` = table file, ``root`` = image folder), ``coco`` (captions JSON), ``karpathy``
    (``dataset_coco.json`` style), ``wds`` (WebDataset shards; ``path`` may use brace notation),
    ``imagefolder`` (labelled tree, evaluation), ``cifar10`` / ``cifar100`` / ``stl10`` (torchvision).
    """

    format: str = "synthetic"
    path: str = ""  # train file / shard pattern (or folder for imagefolder / torchvision root)
    root: str = ""  # image root for table formats
    eval_train_path: str = ""  # labelled train set for probes (defaults to ``path`` with split 'train')
    eval_test_path: str = ""  # labelled test set for probes / retrieval
    image_key: str = "filepath"
    caption_key: str = "title"
    label_key: str = ""
    separator: str = ","
    text_key: str = "txt"  # WebDataset: txt (KEY.json's captions list, else KEY.txt) or json:FIELD
    label_ext: str = "cls"
    num_samples: int = 0  # 0 = from sizes.json / stats / len(dataset)
    shuffle_buffer: int = 1000
    resampled: bool = False
    paired_fraction: float = 1.0  # fraction of training images that keep their captions
    max_bad_fraction: float = 0.05  # stop when more than this fraction of samples is unusable
    max_image_pixels: int = 89_478_485  # PIL's decompression-bomb limit
    workers: int = -1  # data-loader processes; -1 = chosen from the machine (train/device.py: resolve_workers)
    augment: str = "auto"  # cpu (per image, in the workers) | device (batched, on the training device) | auto
    cache: str = "auto"  # decode once (data/cache.py): none | memory | disk | auto (from the data size and free memory)
    cache_dir: str = ""  # disk caches; "" = $XDG_CACHE_HOME/tvdim/decoded (~/.cache/tvdim/decoded)
    # synthetic generator
    synth_train: int = 4000
    synth_test: int = 1000
    synth_seed: int = 0
    synth_objects: int = 3
    synth_swap: float = 0.0  # caption swap rate p baked into the synthetic captions
    synth_corrupt: float = 0.0  # attribute corruption rate
    synth_distract: float = 0.0  # probability of an irrelevant sentence


@dataclass
class ModelConfig:
    backbone: str = "amdim"  # an entry of the backbone registry (models/backbones.py) or a timm model name
    image_size: int = 32  # 32, 64 or 128 for amdim; any size the backbone accepts for timm models
    size: str = "auto"  # amdim encoder size: tiny | small | base (the AMDIM reference) | auto (base on a GPU, else tiny)
    ndf: int = 0  # 0 = from model.size (SIZES); a value set here wins over the preset
    n_rkhs: int = 0
    n_depth: int = 0
    use_bn: bool = False
    channels_last: bool = True
    init: str = ""  # timm backbones: a local timm-format weights file to start from (nothing is downloaded)


# model.size presets: (ndf, n_rkhs, n_depth). base is the AMDIM reference (made for a GPU); tiny is the demo's encoder
# (README, "Model size").
SIZES = {"tiny": (32, 256, 1), "small": (64, 512, 2), "base": (128, 1024, 3)}


def resolve_size(cfg: "Config", gpu: bool, saved: dict[str, Any] | None = None) -> tuple["Config", str]:
    """``cfg`` with ``model.ndf / n_rkhs / n_depth`` left at 0 filled from ``model.size``, and a line saying what
    was chosen and why. ``auto`` is ``base`` when training on a GPU and ``tiny`` otherwise; ``saved``: the model
    section of a checkpoint being resumed, whose sizes an ``auto`` run keeps."""
    m = cfg.model
    if m.ndf and m.n_rkhs and m.n_depth:
        return cfg, f"model size: ndf {m.ndf}, n_rkhs {m.n_rkhs}, n_depth {m.n_depth} (set in the config)"
    if saved and m.size == "auto" and all(saved.get(k) for k in ("ndf", "n_rkhs", "n_depth")):
        preset, why = (saved["ndf"], saved["n_rkhs"], saved["n_depth"]), "kept from the checkpoint being resumed"
        name = next((k for k, v in SIZES.items() if v == preset), "custom")
    elif m.size == "auto":
        name = "base" if gpu else "tiny"
        why = ("auto on a GPU" if gpu else "auto on a CPU, where base (the AMDIM reference, made for a GPU) takes "
               "tens of seconds a step; set model.size=base for it")
        preset = SIZES[name]
    else:
        name, why, preset = m.size, "set by model.size", SIZES[m.size]
    ndf, n_rkhs, n_depth = (v or p for v, p in zip((m.ndf, m.n_rkhs, m.n_depth), preset))
    new = replace(cfg, model={"size": name if name in SIZES else m.size, "ndf": ndf, "n_rkhs": n_rkhs,
                              "n_depth": n_depth})
    return new, f"model size: {name} (ndf {ndf}, n_rkhs {n_rkhs}, n_depth {n_depth}), {why}"


BATCH = {"gpu": 200, "cpu": 64}  # train.batch_size=0 (auto): AMDIM's batch on a GPU; the study's CPU batch


def resolve_batch(cfg: "Config", gpu: bool, saved: int | None = None) -> tuple["Config", str]:
    """``cfg`` with ``train.batch_size`` 0 (auto) set from the device (or kept from the run being resumed,
    ``saved``), and a line saying what was chosen and why."""
    if cfg.train.batch_size:
        return cfg, f"batch: {cfg.train.batch_size} per process (set in the config)"
    if saved:
        batch, why = saved, "kept from the checkpoint being resumed"
    else:
        batch = BATCH["gpu" if gpu else "cpu"]
        why = "auto on a GPU (AMDIM's batch)" if gpu else \
            f"auto on a CPU ({BATCH['gpu']}, AMDIM's batch, on a GPU); set train.batch_size to change it"
    return replace(cfg, train={"batch_size": batch}), f"batch: {batch} per process, {why}"


@dataclass
class TextConfig:
    vocab_size: int = 2000
    max_len: int = 32
    dim: int = 256
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    pooling: str = "mean"  # mean | cls
    tokenizer_path: str = ""  # reuse a trained tokenizer.json instead of training one
    pretrained: str = ""  # local Hugging Face model folder (needs tvdim[hf]); replaces the tower and tokenizer above
    freeze: bool = False  # keep the pretrained tower's weights fixed (only the projection to n_rkhs trains)


@dataclass
class LossConfig:
    lam: float = 1.0  # lambda weight of L_inter
    margin: float = 0.2
    hinge: str = "sum"  # sum | max | logistic
    gamma: float = 2.0  # logistic ranking scale
    temperature: float = 0.1  # InfoNCE image-text temperature (cosine scores)
    local: bool = False  # add global-to-local image-text terms
    nce_tclip: float = 20.0
    nce_reg: float = 0.05
    chunk_size: int = 0  # >0: compute NCE score matrices in chunks of this many source rows
    robust: str = "none"  # none | gmm | small-loss | storey: per-pair weights of the image-text term (noisy captions)
    robust_warmup: int = 100  # training steps with all weights 1 before weighting starts
    robust_memory: int = 1024  # recent per-pair losses (storey: rank p-values) the rate is estimated on
    robust_drop: float = -1.0  # small-loss: fraction of pairs dropped; < 0 = estimated by the mixture
    intra_term: str = ""  # "" = the method's; amdim | simclr | none (method_spec.py)
    inter_term: str = ""  # "" = the method's; rank | nce | siglip | none
    simclr_temperature: float = 0.1  # NT-Xent temperature (SimCLR, SLIP)
    proj_dim: int = 128  # SimCLR projection head output size
    proj_hidden: int = 0  # SimCLR projection head hidden size; 0 = the image feature size
    learn_scale: str = "auto"  # nce: CLIP's learnable logit scale; auto = the method's (clip, slip) | on | off


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.999)
    weight_decay: float = 1e-5
    eps: float = 1e-8
    warmup_steps: int = 500
    decay_at: float = 0.8  # fraction of training after which lr is multiplied by decay_factor
    decay_factor: float = 0.2
    text_grad_clip: float = 1.0  # 0 disables
    probe_lr: float = 1e-3


@dataclass
class TrainConfig:
    method: str = "tvdim"
    steps: int = 1000
    batch_size: int = 0  # per process; 0 = auto: 200 (AMDIM's) on a GPU, 64 on a CPU (resolve_batch)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    compile: str = "auto"  # on | off | auto (on for CUDA): torch.compile of the training step, eager on failure
    out_dir: str = "runs/tvdim"
    log_every: int = 10
    ckpt_every: int = 200
    probe_task: str = ""  # label used by the online probe ('' = every label present)
    progress: bool = True


@dataclass
class EvalConfig:
    linear_epochs: int = 30
    mlp_epochs: int = 30
    probe_batch: int = 256
    probe_lr: float = 1e-3
    knn_k: int = 20
    retrieval_max: int = 1000  # retrieval is scored on at most this many held-out images (all their captions)
    few_shot: int = 10  # linear probe on this many labelled images per class (0 = off)
    few_shot_draws: int = 5  # random draws of the labelled subset, averaged
    few_shot_epochs: int = 300  # full-batch Adam steps of the few-shot probe
    # zero-shot classification: each class name goes through every template ("{}" = the name); see eval/zeroshot.py
    zeroshot_templates: tuple[str, ...] = ("{}", "a photo of a {}.", "an aerial photo of a {}.",
                                           "a satellite image of a {}.")
    logreg_cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)  # logistic probe C grid; () = off
    logreg_val_fraction: float = 0.2  # share of the probe-training data held out to choose C


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextConfig = field(default_factory=TextConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def to_plain(obj: Any) -> Any:
    """Dataclass -> nested dict of plain Python values (tuples become lists): safe for YAML / weights_only."""
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = getattr(typ, "__origin__", None)
    try:
        if typ is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        if typ is str and isinstance(value, bool):  # YAML reads on / off as booleans; the choice keys mean words
            return "on" if value else "off"
        if typ in (int, float, str):
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return typ(value)
        if origin is tuple:
            args = typ.__args__
            if len(args) == 2 and args[1] is Ellipsis:  # variable length: a list, or one bare value
                if isinstance(value, str) and value.strip().startswith("["):
                    value = yaml.safe_load(value)
                if isinstance(value, (str, int, float)):
                    value = [value]
                if not isinstance(value, (list, tuple)):
                    raise ValueError(value)
                return tuple(_coerce(v, args[0], where) for v in value)
            if isinstance(value, str):
                value = yaml.safe_load(value)
            return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key '{where}': cannot use {value!r} as {getattr(typ, '__name__', typ)}") from exc
    return value


def _apply(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    hints = get_type_hints(type(obj))
    valid = [f.name for f in fields(obj)]
    for key, value in data.items():
        where = f"{prefix}{key}"
        if where in REMOVED_KEYS:
            log.info("config key '%s' was removed and is ignored: %s", where, REMOVED_KEYS[where])
            continue
        if key not in valid:
            raise ConfigError(f"unknown config key '{where}'; valid keys here: {', '.join(valid)}")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}' is a section; give a mapping, not {value!r}")
            _apply(current, value, where + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], where))


def parse_override(text: str) -> dict[str, Any]:
    """``"train.steps=10"`` -> ``{"train": {"steps": 10}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else ""
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


_SWITCH = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}  # YAML / older configs: bools


def validate(cfg: Config) -> Config:
    if cfg.train.method not in METHOD_SPECS:
        raise ConfigError(f"unknown method '{cfg.train.method}'; valid methods: {', '.join(METHOD_SPECS)}")
    if cfg.model.image_size < 8:
        raise ConfigError(f"model.image_size must be >= 8, got {cfg.model.image_size}")
    if cfg.model.backbone == "amdim" and cfg.model.image_size not in (32, 64, 128):
        raise ConfigError(f"model.image_size must be 32, 64 or 128, got {cfg.model.image_size}")
    cfg.train.compile = _SWITCH.get(cfg.train.compile.strip().lower(), cfg.train.compile)
    choices = {"loss.hinge": (cfg.loss.hinge, ("sum", "max", "logistic")),
               "loss.robust": (cfg.loss.robust, ("none", "gmm", "small-loss", "storey")),
               "text.pooling": (cfg.text.pooling, ("mean", "cls")),
               "train.precision": (cfg.train.precision, ("auto", "fp32", "bf16", "fp16")),
               "data.augment": (cfg.data.augment, ("auto", "cpu", "device")),
               "data.cache": (cfg.data.cache, ("auto", "none", "memory", "disk")),
               "model.size": (cfg.model.size, ("auto", *SIZES)),
               "train.compile": (cfg.train.compile, ("auto", "on", "off")),
               "loss.intra_term": (cfg.loss.intra_term, ("", *INTRA_TERMS)),
               "loss.inter_term": (cfg.loss.inter_term, ("", *INTER_TERMS)),
               "loss.learn_scale": (cfg.loss.learn_scale, ("auto", "on", "off"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            shown = ", ".join(v if v else "'' (the method's own)" for v in allowed)
            raise ConfigError(f"config key '{key}' = {value!r}; valid values: {shown}")
    if cfg.train.steps < 1 or cfg.train.batch_size == 1 or cfg.train.batch_size < 0:
        raise ConfigError("train.steps must be >= 1 and train.batch_size >= 2 (contrastive losses need negatives), "
                          "or 0 to choose it from the device")
    if cfg.loss.robust_memory < 1 or cfg.loss.robust_warmup < 0 or not cfg.loss.robust_drop < 1.0:
        raise ConfigError("loss.robust_memory must be >= 1, loss.robust_warmup >= 0 and loss.robust_drop < 1 "
                          f"(got {cfg.loss.robust_memory}, {cfg.loss.robust_warmup}, {cfg.loss.robust_drop})")
    if not 0.0 <= cfg.data.paired_fraction <= 1.0:
        raise ConfigError(f"data.paired_fraction must be in [0, 1], got {cfg.data.paired_fraction}")
    bad = [t for t in cfg.eval.zeroshot_templates if t.count("{}") != 1]
    if bad:
        raise ConfigError(f"eval.zeroshot_templates: each template needs exactly one '{{}}' for the class name, "
                          f"got {bad[0]!r}")
    if not 0.0 < cfg.eval.logreg_val_fraction < 1.0 or any(c <= 0 for c in cfg.eval.logreg_cs):
        raise ConfigError("eval.logreg_val_fraction must be in (0, 1) and every eval.logreg_cs value > 0")
    _check_ranges(cfg)
    return cfg


# Numeric limits (a value outside them crashes later or poisons training). Every float must also be finite.
_AT_LEAST_1 = ("text.vocab_size", "text.heads", "text.dim",
               "train.log_every", "train.ckpt_every", "data.max_image_pixels", "eval.probe_batch", "eval.knn_k",
               "loss.proj_dim")
_AT_LEAST_0 = ("model.ndf", "model.n_rkhs", "model.n_depth",  # 0 = from model.size
               "data.num_samples", "data.shuffle_buffer", "text.layers", "loss.chunk_size",
               "loss.lam", "loss.nce_reg", "optim.lr", "optim.probe_lr", "optim.weight_decay", "optim.warmup_steps",
               "optim.decay_factor", "optim.text_grad_clip", "eval.linear_epochs", "eval.mlp_epochs",
               "eval.probe_lr", "eval.retrieval_max", "data.synth_train", "data.synth_test", "data.synth_objects",
               "loss.proj_hidden")
_ABOVE_0 = ("optim.eps", "loss.temperature", "loss.nce_tclip", "loss.gamma", "loss.simclr_temperature")
_FRACTION = ("data.max_bad_fraction", "data.synth_swap", "data.synth_corrupt",
             "data.synth_distract", "optim.decay_at")


def _check_ranges(cfg: Config) -> None:
    import math

    for section in fields(cfg):
        for f in fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, float) and not math.isfinite(v):
                    raise ConfigError(f"config key '{section.name}.{f.name}' must be a finite number, got {value}")

    def get(key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    for keys, ok, need in ((_AT_LEAST_1, lambda v: v >= 1, ">= 1"), (_AT_LEAST_0, lambda v: v >= 0, ">= 0"),
                           (_ABOVE_0, lambda v: v > 0, "> 0"), (_FRACTION, lambda v: 0 <= v <= 1, "in [0, 1]")):
        for key in keys:
            if not ok(get(key)):
                raise ConfigError(f"config key '{key}' must be {need}, got {get(key)}")
    if cfg.data.workers < -1:
        raise ConfigError(f"config key 'data.workers' must be >= 0, or -1 to choose from the machine, got "
                          f"{cfg.data.workers}")
    if not all(0 <= b < 1 for b in cfg.optim.betas):
        raise ConfigError(f"config key 'optim.betas' must be two numbers in [0, 1), got {list(cfg.optim.betas)}")
    if not 0 <= cfg.text.dropout < 1:
        raise ConfigError(f"config key 'text.dropout' must be in [0, 1), got {cfg.text.dropout}")
    if cfg.text.max_len < 2:
        raise ConfigError(f"config key 'text.max_len' must be >= 2 ([CLS] and [SEP]), got {cfg.text.max_len}")
    if cfg.text.dim % cfg.text.heads:
        raise ConfigError(f"config key 'text.dim' ({cfg.text.dim}) must be divisible by text.heads "
                          f"({cfg.text.heads})")


def merge(cfg: Config, data: dict[str, Any]) -> Config:
    _apply(cfg, data)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; ConfigError naming the file when missing, malformed or not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """Build a :class:`Config`: defaults <- ``base`` <- YAML file <- ``overrides`` (``a.b=value`` strings)."""
    cfg = Config()
    if base:
        _apply(cfg, base)
    if path:
        _apply(cfg, read_yaml(path))
    for text in overrides or []:
        _apply(cfg, parse_override(text))
    return validate(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    """The config a checkpoint / export holds. One written before ``loss.learn_scale`` existed trained InfoNCE with
    the fixed temperature: it keeps it (``off``), so old clip checkpoints load as they were trained."""
    loss = data.get("loss") if isinstance(data, dict) else None
    if isinstance(loss, dict) and "learn_scale" not in loss:
        data = {**data, "loss": {**loss, "learn_scale": "off"}}
    cfg = Config()
    _apply(cfg, data)
    return validate(cfg)


def replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """Copy of ``cfg`` with some section fields replaced: ``replace(cfg, train={"method": "amdim"})``."""
    new = from_dict(to_plain(cfg))
    _apply(new, sections)
    return validate(new)


__all__ = ["SIZES", "resolve_size", "BATCH", "resolve_batch", "Config", "DataConfig", "ModelConfig", "TextConfig",
           "LossConfig", "OptimConfig", "TrainConfig", "EvalConfig", "load_config", "read_yaml", "from_dict", "replace",
           "to_plain"]
