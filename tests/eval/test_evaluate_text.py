"""tvdim evaluate beyond label probes: label-free retrieval (several captions per image), zero-shot, logreg."""
from __future__ import annotations

import json
import logging
import sys

import pytest

from tvdim.api import load_method
from tvdim.cli import main
from tvdim.config import DataConfig, load_config
from tvdim.data.synthetic import SyntheticCaptions, write_synthetic
from tvdim.errors import DataError
from tvdim.eval.evaluate import evaluate, markdown_table
from tvdim.eval.features import extract_features
from tvdim.eval.zeroshot import zeroshot_scores
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=48",
        "data.synth_test=24", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "eval.linear_epochs=1", "eval.mlp_epochs=1", "train.device=cpu", "train.steps=2",
        "eval.logreg_cs=[0.01, 1.0]", "eval.few_shot=0"]

RETRIEVAL_HEAD = "i2t R@1/5/10 (chance R@10) | t2i R@1/5/10 (chance R@10) | medr i2t / t2i"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_eval_runs")
    return {m: pretrain(load_config(overrides=TINY + [f"train.method={m}", f"train.out_dir={root / m}"])).checkpoint
            for m in ("amdim", "tvdim")}


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """A caption table with two captions per image and no label column; and one with neither."""
    root = tmp_path_factory.mktemp("unlabelled")
    table = write_synthetic(root, 12, split="test", image_size=32)
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    two = root / "two_captions.jsonl"
    two.write_text("".join(json.dumps({"filepath": r["filepath"], "caption": [r["caption"], f"a {r['colour']} "
                                       f"{r['shape']}"]}) + "\n" for r in rows))
    bare = root / "bare.jsonl"
    bare.write_text("".join(json.dumps({"filepath": r["filepath"], "caption": ""}) + "\n" for r in rows))
    return root, two, bare


def table_data(root, table) -> DataConfig:
    # data.path points nowhere: a label-free evaluation must not read the probe-training split at all
    return DataConfig(format="jsonl", path=str(root / "missing.jsonl"), root=str(root), eval_test_path=str(table),
                      caption_key="caption")


def test_label_free_captions_give_retrieval_with_every_caption(ckpts, unlabelled, tmp_path):
    root, two, _ = unlabelled
    loaded = load_method(ckpts["tvdim"])
    res = evaluate(loaded, table_data(root, two), out_dir=tmp_path)
    assert res["tasks"] == {} and res["n_train"] == 0 and res["n_test"] == 12
    ret = res["retrieval"]
    assert ret["n_images"] == 12 and ret["n_pairs"] == 24  # both captions of every image are queries
    for d in ("i2t", "t2i"):
        assert 0 <= ret[f"{d}_R@1"] <= ret[f"{d}_R@5"] <= ret[f"{d}_R@10"] <= 1
        assert 1 <= ret[f"{d}_medr"] <= (24 if d == "i2t" else 12)
    assert abs(ret["t2i_R@1"] * 24 - round(ret["t2i_R@1"] * 24)) < 1e-6  # per caption
    assert abs(ret["i2t_R@1"] * 12 - round(ret["i2t_R@1"] * 12)) < 1e-6  # per image
    assert json.loads((tmp_path / "results.json").read_text())["retrieval"] == ret


def test_label_free_cli_prints_retrieval(ckpts, unlabelled, capsys):
    root, two, _ = unlabelled
    code = main(["evaluate", str(ckpts["tvdim"]), "data.format=jsonl", f"data.path={root / 'missing.jsonl'}",
                 f"data.root={root}", f"data.eval_test_path={two}", "data.caption_key=caption"])
    out = capsys.readouterr().out
    assert code == 0 and "i2t R@1/5/10 (chance R@10)" in out


def test_neither_labels_nor_captions_is_one_clear_error(ckpts, unlabelled, capsys):
    root, _, bare = unlabelled
    with pytest.raises(DataError, match="neither labels nor captions"):
        evaluate(ckpts["tvdim"], table_data(root, bare))
    code = main(["evaluate", str(ckpts["tvdim"]), "data.format=jsonl", f"data.path={root / 'missing.jsonl'}",
                 f"data.root={root}", f"data.eval_test_path={bare}", "data.caption_key=caption"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("tvdim: error: ")
    assert "neither labels nor captions" in err


def test_captions_without_text_tower_says_so(ckpts, unlabelled):
    root, two, _ = unlabelled
    with pytest.raises(DataError, match="'amdim' has no text encoder"):
        evaluate(ckpts["amdim"], table_data(root, two))


def test_zeroshot_and_logreg_next_to_the_probes(ckpts, tmp_path):
    loaded = load_method(ckpts["tvdim"])
    res = evaluate(loaded, out_dir=tmp_path)
    assert set(res["tasks"]) == {"shape", "colour", "count"}
    cfg = loaded.config
    te = extract_features(loaded.method.image_encoder,
                          SyntheticCaptions("test", 24, cfg.data.synth_seed, 32, cfg.data.synth_objects), 32)
    names = SyntheticCaptions("test", 1).tasks
    for task, row in res["tasks"].items():
        assert set(row) >= {"linear", "mlp", "knn", "logreg", "logreg_balanced", "logreg_C", "zeroshot",
                            "zeroshot_balanced"}
        assert row["logreg_C"] in (0.01, 1.0)
        ref = zeroshot_scores(loaded.method.text_encoder, loaded.tokenizer, te.feats, te.labels[task], names[task],
                              cfg.eval.zeroshot_templates)
        assert row["zeroshot"] == pytest.approx(ref["accuracy"])
        assert row["zeroshot_balanced"] == pytest.approx(ref["balanced_accuracy"])
    assert res["retrieval"]["n_images"] == 24 and "i2t_medr" in res["retrieval"]
    head = (tmp_path / "results.md").read_text().splitlines()[0]
    assert "shape logreg" in head and "shape zero-shot" in head


def test_no_zeroshot_without_text_tower(ckpts):
    res = evaluate(ckpts["amdim"])
    assert all("zeroshot" not in row and "logreg" in row for row in res["tasks"].values())
    assert "retrieval" not in res


def test_templates_are_configurable(ckpts):
    loaded = load_method(ckpts["tvdim"])
    ecfg = load_config(overrides=TINY + ["eval.zeroshot_templates=[]", "eval.logreg_cs=[]"]).eval
    res = evaluate(loaded, ecfg=ecfg)
    assert all("zeroshot" not in row and "logreg" not in row for row in res["tasks"].values())
    assert all("linear" in row for row in res["tasks"].values())


def test_without_sklearn_the_logreg_probe_is_skipped_with_a_log_line(ckpts, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    with caplog.at_level(logging.INFO, logger="tvdim.eval"):
        res = evaluate(ckpts["amdim"])
    assert all("logreg" not in row and "linear" in row for row in res["tasks"].values())
    assert "scikit-learn is not installed" in caplog.text and "tvdim[eval]" in caplog.text


def test_markdown_table_extra_columns_only_when_present():
    rows = {"a": {"tasks": {"shape": {"linear": 0.5, "mlp": 0.25, "knn": 1.0, "zeroshot": 0.75}}},
            "b": {"tasks": {"shape": {"zeroshot": 0.125}}}}
    lines = markdown_table(rows).splitlines()
    assert lines[0] == f"| method | shape linear | shape MLP | shape kNN | shape zero-shot | {RETRIEVAL_HEAD} |"
    assert lines[2] == "| a | 50.0 | 25.0 | 100.0 | 75.0 | - | - | - |"
    assert lines[3] == "| b | - | - | - | 12.5 | - | - | - |"
