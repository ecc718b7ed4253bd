"""Typed config: defaults <- YAML <- overrides, with errors that name the key."""
from __future__ import annotations

import pytest

from tvdim.config import Config, from_dict, load_config, parse_override, replace, to_plain
from tvdim.errors import ConfigError


def test_defaults_match_method_md():
    cfg = load_config()
    assert cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.8, 0.999) and cfg.optim.weight_decay == 1e-5
    assert cfg.optim.warmup_steps == 500 and cfg.optim.decay_factor == 0.2
    assert cfg.loss.margin == 0.2 and cfg.loss.hinge == "sum" and cfg.loss.lam == 1.0
    assert cfg.loss.nce_tclip == 20.0 and cfg.loss.nce_reg == 0.05
    assert (cfg.model.size, cfg.model.ndf, cfg.model.n_rkhs, cfg.model.n_depth) == ("auto", 0, 0, 0)
    from tvdim.config import resolve_size

    # model.size=auto: the AMDIM reference on a GPU, the demo's encoder on a CPU
    base = resolve_size(cfg, gpu=True)[0].model
    assert (base.size, base.ndf, base.n_rkhs, base.n_depth) == ("base", 128, 1024, 3)
    tiny = resolve_size(cfg, gpu=False)[0].model
    assert (tiny.size, tiny.ndf, tiny.n_rkhs, tiny.n_depth) == ("tiny", 32, 256, 1)


def test_yaml_then_overrides_precedence(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  steps: 5\n  batch_size: 16\nmodel:\n  ndf: 16\n")
    cfg = load_config(p, ["train.steps=7"], base={"train": {"steps": 3, "seed": 9}, "model": {"ndf": 4}})
    assert cfg.train.steps == 7  # override beats YAML beats base
    assert cfg.train.batch_size == 16 and cfg.model.ndf == 16  # YAML beats base
    assert cfg.train.seed == 9  # base kept where nothing else sets it
    assert cfg.model.n_rkhs == 0 and cfg.model.size == "auto"  # defaults elsewhere
    assert load_config(p).train.steps == 5


def test_later_override_wins():
    assert load_config(overrides=["train.steps=3", "train.steps=4"]).train.steps == 4


def test_unknown_key_names_key_and_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["train.stepz=3"])
    msg = str(info.value)
    assert "train.stepz" in msg
    for key in ("steps", "batch_size", "method", "out_dir"):
        assert key in msg
    with pytest.raises(ConfigError, match="'bogus'.*data, model, text, loss, optim, train, eval"):
        load_config(overrides=["bogus.x=1"])


def test_unknown_key_in_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  width: 3\n")
    with pytest.raises(ConfigError, match="model.width.*ndf"):
        load_config(p)


@pytest.mark.parametrize("override,key", [("train.steps=abc", "train.steps"), ("train.steps=1.5", "train.steps"),
                                          ("model.use_bn=maybe", "model.use_bn"), ("optim.lr=fast", "optim.lr"),
                                          ("optim.betas=[0.9]", "optim.betas"), ("train.steps=", "train.steps")])
def test_bad_value_type_names_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=[override])


def test_types_are_coerced():
    cfg = load_config(overrides=["train.steps=10", "optim.lr=1e-3", "model.use_bn=yes", "train.progress=off",
                                 "data.path=123", "train.steps=12.0"])
    assert cfg.train.steps == 12 and isinstance(cfg.train.steps, int)
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.model.use_bn is True and cfg.train.progress is False
    assert cfg.data.path == "123"


def test_tuple_betas_override():
    cfg = load_config(overrides=["optim.betas=[0.9,0.99]"])
    assert cfg.optim.betas == (0.9, 0.99) and isinstance(cfg.optim.betas, tuple)
    assert load_config(overrides=["optim.betas=[0, 0]"]).optim.betas == (0.0, 0.0)  # ints coerced (1: not for Adam)


@pytest.mark.parametrize("override,key,values", [
    ("loss.hinge=foo", "loss.hinge", ["sum", "max", "logistic"]),
    ("text.pooling=max", "text.pooling", ["mean", "cls"]),
    ("train.precision=fp64", "train.precision", ["auto", "fp32", "bf16", "fp16"]),
    ("train.method=byol", "method", ["amdim", "tvdim", "tvdim-nce", "clip", "simclr", "slip", "siglip", "random", "supervised"]),
])
def test_invalid_choice_lists_values(override, key, values):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    msg = str(info.value)
    assert key in msg and all(v in msg for v in values)


@pytest.mark.parametrize("override", ["model.image_size=48", "train.batch_size=1", "train.steps=0",
                                      "data.paired_fraction=1.5"])
def test_invalid_values_rejected(override):
    with pytest.raises(ConfigError):
        load_config(overrides=[override])


def test_section_needs_mapping_and_override_syntax():
    with pytest.raises(ConfigError, match="section"):
        load_config(overrides=["train=5"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["train.steps"])
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_to_plain_round_trip_and_replace():
    cfg = load_config(overrides=["optim.betas=[0.9,0.99]", "train.method=clip"])
    plain = to_plain(cfg)
    assert plain["optim"]["betas"] == [0.9, 0.99]
    back = from_dict(plain)
    assert isinstance(back, Config) and back == cfg
    new = replace(cfg, train={"method": "amdim", "steps": 3})
    assert new.train.method == "amdim" and new.train.steps == 3
    assert cfg.train.method == "clip"  # original untouched
    with pytest.raises(ConfigError):
        replace(cfg, train={"method": "nope"})


def test_variable_length_tuple_keys():
    cfg = load_config(overrides=['eval.zeroshot_templates=["{}", "a photo of a {}."]', "eval.logreg_cs=[0.1, 10]"])
    assert cfg.eval.zeroshot_templates == ("{}", "a photo of a {}.") and cfg.eval.logreg_cs == (0.1, 10.0)
    cfg = load_config(overrides=['eval.zeroshot_templates="an aerial photo of {}"', "eval.logreg_cs=[]"])
    assert cfg.eval.zeroshot_templates == ("an aerial photo of {}",) and cfg.eval.logreg_cs == ()
    assert from_dict(to_plain(cfg)).eval == cfg.eval  # survives a checkpoint's plain config


@pytest.mark.parametrize("override, match", [
    ('eval.zeroshot_templates=["a photo"]', "exactly one '{}'"),
    ("eval.logreg_cs=[0.1, -1]", "logreg_cs"),
    ("eval.logreg_cs={a: 1}", "cannot use"),
    ("eval.logreg_val_fraction=1.0", "logreg_val_fraction"),
])
def test_bad_eval_lists_rejected(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=[override])


@pytest.mark.parametrize("override,key", [
    ("train.ckpt_every=0", "train.ckpt_every"), ("train.log_every=0", "train.log_every"),
    ("data.workers=-2", "data.workers"), ("model.ndf=-1", "model.ndf"), ("model.n_rkhs=-8", "model.n_rkhs"),
    ("model.n_depth=-1", "model.n_depth"), ("model.size=huge", "model.size"), ("optim.lr=nan", "optim.lr"), ("optim.lr=inf", "optim.lr"),
    ("optim.lr=-1", "optim.lr"), ("optim.lr=.nan", "optim.lr"), ("optim.probe_lr=-0.1", "optim.probe_lr"),
    ("optim.betas=[0.9,1.5]", "optim.betas"), ("optim.weight_decay=-1", "optim.weight_decay"),
    ("optim.warmup_steps=-5", "optim.warmup_steps"), ("optim.decay_at=2", "optim.decay_at"),
    ("data.max_bad_fraction=2", "data.max_bad_fraction"), ("data.max_bad_fraction=-0.1", "data.max_bad_fraction"),
    ("loss.temperature=0", "loss.temperature"),
    ("loss.margin=nan", "loss.margin"), ("loss.lam=-1", "loss.lam"), ("loss.chunk_size=-1", "loss.chunk_size"),
    ("text.max_len=1", "text.max_len"), ("text.dropout=1", "text.dropout"), ("text.heads=0", "text.heads"),
    ("eval.knn_k=0", "eval.knn_k"), ("eval.probe_batch=0", "eval.probe_batch"),
])
def test_out_of_range_values_name_the_key(override, key):
    """Values that would crash later (ZeroDivisionError, invalid DataLoader) or poison training (NaN lr)."""
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert key in str(info.value)


def test_text_dim_must_split_into_heads():
    with pytest.raises(ConfigError, match=r"text.dim.*text.heads"):
        load_config(overrides=["text.dim=30", "text.heads=4"])
    assert load_config(overrides=["text.dim=32", "text.heads=4"]).text.dim == 32


def test_boundary_values_accepted():
    cfg = load_config(overrides=["train.log_every=1", "train.ckpt_every=1", "data.workers=0", "optim.lr=0",
                                 "data.max_bad_fraction=1", "data.max_bad_fraction=0", "optim.warmup_steps=0",
                                 "text.dropout=0", "loss.margin=0", "model.n_depth=1"])
    assert cfg.optim.lr == 0 and cfg.data.max_bad_fraction == 0


@pytest.mark.parametrize("value, expect", [
    ("true", "on"), ("false", "off"), ("on", "on"), ("off", "off"), ("auto", "auto"), ("yes", "on"), ("no", "off"),
    ("True", "on"), ("OFF", "off"), ("1", "on"), ("0", "off"), ('"on"', "on"), ('"false"', "off"),
])
def test_compile_switch_values(value, expect):
    """train.compile is auto|on|off; YAML booleans (true/false/yes/no/on/off all parse as bools) and the bool of
    older configs map to on/off."""
    assert load_config(overrides=[f"train.compile={value}"]).train.compile == expect


@pytest.mark.parametrize("value, expect", [(False, "off"), (True, "on"), ("no", "off"), ("Yes", "on"),
                                           ("auto", "auto"), ("on", "on")])
def test_compile_switch_from_a_dict(value, expect):
    assert from_dict({"train": {"compile": value}}).train.compile == expect


def test_compile_switch_from_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  compile: false\n")
    assert load_config(p).train.compile == "off"
    p.write_text("train:\n  compile: yes\n")
    assert load_config(p).train.compile == "on"
    assert load_config().train.compile == "auto"  # the default


@pytest.mark.parametrize("override, key", [
    ("train.compile=maybe", "train.compile"), ("train.compile=2", "train.compile"),
    ("data.augment=gpu", "data.augment"), ("data.augment=true", "data.augment"),
])
def test_invalid_switch_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert key in str(info.value) and "valid values" in str(info.value)


def test_invalid_compile_from_a_dict_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.compile.*'maybe'"):
        from_dict({"train": {"compile": "maybe"}})


@pytest.mark.parametrize("value", ["auto", "cpu", "device"])
def test_augment_values_accepted(value):
    assert load_config(overrides=[f"data.augment={value}"]).data.augment == value


def test_workers_minus_one_chooses_and_below_is_an_error():
    assert load_config().data.workers == -1  # the default: chosen from the machine
    assert load_config(overrides=["data.workers=-1"]).data.workers == -1
    assert load_config(overrides=["data.workers=0"]).data.workers == 0
    for bad in (-2, -8):
        with pytest.raises(ConfigError, match=r"data\.workers.*-1"):
            load_config(overrides=[f"data.workers={bad}"])
        with pytest.raises(ConfigError, match=r"data\.workers"):
            from_dict({"data": {"workers": bad}})


def test_old_checkpoint_config_still_loads():
    """A checkpoint written before train.compile became auto|on|off and data.augment existed: compile is a bool,
    workers 0, no augment key."""
    old = to_plain(Config())
    old["train"]["compile"] = False
    old["data"]["workers"] = 0
    del old["data"]["augment"]
    cfg = from_dict(old)
    assert cfg.train.compile == "off" and cfg.data.workers == 0 and cfg.data.augment == "auto"
    old["train"]["compile"] = True
    assert from_dict(old).train.compile == "on"
    assert from_dict(to_plain(cfg)) == cfg  # and survives being saved again


def test_model_size_presets_and_what_wins():
    from tvdim.config import SIZES, resolve_size

    assert SIZES == {"tiny": (32, 256, 1), "small": (64, 512, 2), "base": (128, 1024, 3)}  # as README documents
    small, note = resolve_size(load_config(overrides=["model.size=small", "model.ndf=48"]), gpu=True)
    assert (small.model.ndf, small.model.n_rkhs, small.model.n_depth) == (48, *SIZES["small"][1:])  # a set key wins
    assert "small" in note and "set by model.size" in note
    explicit, note = resolve_size(load_config(overrides=["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1"]), True)
    assert (explicit.model.ndf, explicit.model.n_rkhs, explicit.model.n_depth) == (8, 32, 1) and "set in" in note
    # resuming an auto run keeps the checkpoint's sizes, whatever the device now
    kept, note = resolve_size(load_config(), gpu=True, saved={"ndf": 32, "n_rkhs": 256, "n_depth": 1})
    assert (kept.model.ndf, kept.model.n_rkhs, kept.model.n_depth) == (32, 256, 1) and "resumed" in note
    cpu_note = resolve_size(load_config(), gpu=False)[1]
    assert "tiny" in cpu_note and "model.size=base" in cpu_note  # the reason, and how to get the reference
