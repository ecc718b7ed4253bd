"""The study's report: tables (mean ± std over seeds), main runs standing in for default rows, the noise plot."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")


SETTINGS = {"size": 32, "steps": 400, "batch": 64, "ndf": 32, "n_rkhs": 256, "n_depth": 1, "set": []}


def record(experiment: str, label: str, method: str, seed: int, linear: float, settings: dict = SETTINGS) -> dict:
    return {"experiment": experiment, "dataset": "rsicd", "task": "label", "label": label, "method": method,
            "seed": seed, "overrides": [], "machine": "cpu; x86_64, 2 torch threads",
            "date": f"2026-01-0{seed + 1}T00:00:00+00:00", "settings": settings, "total_s": 60.0,
            "eval": {"tasks": {"label": {"linear": linear, "mlp": linear + 0.05, "knn": linear - 0.05}},
                     "retrieval": {"i2t_R@1": 0.02, "i2t_R@5": 0.06, "i2t_R@10": 0.1, "t2i_R@1": 0.01}
                     if method != "amdim" else None}}


def write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def table_row(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_mean_and_std_over_seeds(study, tmp_path):
    rows = [record("main", "amdim", "amdim", s, v) for s, v in enumerate((0.30, 0.34, 0.32))]
    path = write(tmp_path, rows)
    study.report(argparse.Namespace(results=[str(path)], out=str(tmp_path / "rep")))
    cells = table_row((tmp_path / "rep" / "study.md").read_text(), "amdim")
    assert cells[1] == "3"
    assert cells[2] == "32.0 ± 2.0"  # mean and sample std of 30/34/32 %
    assert cells[5] == "-"  # no text tower: no retrieval


def test_main_runs_stand_in_for_default_rows_with_the_same_settings(study, tmp_path):
    other = dict(SETTINGS, size=64)
    rows = [record("main", "tvdim", "tvdim", 0, 0.40), record("main", "amdim", "amdim", 0, 0.36),
            record("main", "tvdim", "tvdim", 1, 0.30),  # a seed the other experiments did not run: not borrowed
            record("main", "clip", "clip", 0, 0.99, other),  # different settings: must not be borrowed
            record("noise", "tvdim p=0.5", "tvdim", 0, 0.38), record("noise", "clip p=0.5", "clip", 0, 0.35),
            record("sensitivity", "lambda=4", "tvdim", 0, 0.41)]
    path = write(tmp_path, rows)
    study.report(argparse.Namespace(results=[str(path)], out=str(tmp_path / "rep")))
    text = (tmp_path / "rep" / "study.md").read_text()
    noise = text.split("### rsicd: noise")[1].split("###")[0]
    labels = [line.split("|")[1].strip() for line in noise.splitlines() if line.startswith("| ") and "---" not in line]
    assert labels[1:] == ["amdim", "tvdim p=0.0", "tvdim p=0.5", "clip p=0.5"]  # plan order, p=0 from main
    assert "clip p=0.0" not in noise
    sens = text.split("### rsicd: sensitivity")[1]
    assert table_row(sens, "lambda=1, margin=0.2, sum, global (main)")[2] == "40.0"
    assert "total wall time 1.0 min" in sens  # borrowed runs do not count towards the experiment's time
    assert (tmp_path / "rep" / "noise_rsicd.png").stat().st_size > 0


def test_transfer_skips_runs_whose_checkpoint_is_gone(study, tmp_path, capsys):
    rows = [dict(record("main", "amdim", "amdim", 0, 0.3))]
    rows[0]["eval"]["checkpoint"] = str(tmp_path / "missing.pt")
    write(tmp_path, rows)
    args = argparse.Namespace(runs=str(tmp_path), experiment="main", seeds="0", only="", data=str(tmp_path),
                              out=str(tmp_path / "t"), probe_epochs=1, workers=0, device="cpu", target="cifar10")
    study.transfer(args)
    out = capsys.readouterr().out
    assert "missing.pt is gone" in out
    assert not (tmp_path / "t" / "results.jsonl").exists()


def test_longer_regime_robust_rows_few_shot_and_val_columns(study, tmp_path, monkeypatch):
    long = dict(SETTINGS, steps=1600)
    rows = [record("noise", "tvdim p=0.5", "tvdim", 0, 0.38), record("noise", "tvdim+gmm p=0.5", "tvdim", 0, 0.40),
            record("noise", "tvdim+gmm p=0.5", "tvdim", 1, 0.42), record("noise", "tvdim+gmm p=0.5", "tvdim", 0, 0.45, long)]
    rows[1]["eval"]["tasks"]["label"]["linear_10shot"] = 0.20
    rows[2]["eval"]["tasks"]["label"]["linear_10shot"] = 0.22
    rows[1]["val"] = {"tasks": {"label": {"linear": 0.5}}}
    plotted = []
    real_plot = study._noise_plot
    monkeypatch.setattr(study, "_noise_plot", lambda runs, task, path: (plotted.append(
        sorted({r["label"] for r in runs})), real_plot(runs, task, path)))
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    text = (tmp_path / "rep" / "study.md").read_text()
    short, longer = text.split("### rsicd: noise (cpu)")[1], text.split("### rsicd: noise, 1600 steps (cpu)")[1]
    gmm = table_row(short.split("###")[0], "tvdim+gmm p=0.5")
    assert gmm[1] == "2" and gmm[2] == "41.0 ± 1.4"  # the 1600-step run is not averaged in
    assert gmm[-2] == "21.0 ± 1.4" and gmm[-1] == "50.0"  # 10-shot over both seeds, val over the seed that has it
    assert table_row(longer, "tvdim+gmm p=0.5")[2] == "45.0"
    assert plotted[0] == ["tvdim p=0.5", "tvdim+gmm p=0.5"]
    assert (tmp_path / "rep" / "noise_rsicd_1600steps.png").stat().st_size > 0


def test_detector_table(study, tmp_path):
    det = {"experiment": "detect", "dataset": "rsicd", "label": "tvdim+gmm p=0.5", "method": "tvdim", "seed": 0,
           "machine": "cpu; x86_64, 1 torch threads", "date": "2026-01-01T00:00:00+00:00", "settings": SETTINGS,
           "detection": {"n": 100, "n_noisy": 50, "auroc": 0.8, "precision_at_noise_rate": 0.7}}
    rows = [det, dict(det, seed=1, detection=dict(det["detection"], auroc=0.9, precision_at_noise_rate=0.8))]
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    cells = table_row((tmp_path / "rep" / "study.md").read_text(), "tvdim+gmm p=0.5")
    assert cells[1:] == ["2", "50 of 100", "85.0 ± 7.1", "75.0 ± 7.1"]


def test_detector_tables_are_split_by_training_length(study, tmp_path):
    det = {"experiment": "detect", "dataset": "rsicd", "label": "tvdim+gmm p=0.5", "method": "tvdim", "seed": 0,
           "machine": "cpu; x86_64, 1 torch threads", "date": "2026-01-01T00:00:00+00:00", "settings": SETTINGS,
           "detection": {"n": 100, "n_noisy": 50, "auroc": 0.8, "precision_at_noise_rate": 0.7}}
    long = dict(det, settings=dict(SETTINGS, steps=1600), detection=dict(det["detection"], auroc=0.9))
    study.report(argparse.Namespace(results=[str(write(tmp_path, [det, long]))], out=str(tmp_path / "rep")))
    text = (tmp_path / "rep" / "study.md").read_text()
    short_part, long_part = text.split("checkpoints after 1600 steps")
    assert table_row(short_part, "tvdim+gmm p=0.5")[1:4] == ["1", "50 of 100", "80.0"]
    assert table_row(long_part, "tvdim+gmm p=0.5")[1:4] == ["1", "50 of 100", "90.0"]


def test_pretrained_text_pairs_each_run_with_a_frozen_tower_run(study):
    runs = study.plan("pretrained-text", text_model="/models/minilm")
    assert [label for label, _, _ in runs] == ["amdim", "tvdim p=0.0", "tvdim+minilm p=0.0", "tvdim p=0.5",
                                               "tvdim+minilm p=0.5", "tvdim p=0.75", "tvdim+minilm p=0.75"]
    assert runs[0] == ("amdim", "amdim", [])  # the image-only baseline at the same code, for the gain over it
    assert {method for _, method, _ in runs[1:]} == {"tvdim"}
    assert runs[3][2] == ["noise=0.5"]  # the baseline differs from its pair only by the text tower
    assert runs[4][2] == ["noise=0.5", "text.pretrained=/models/minilm", "text.freeze=true"]
    assert [label for label, _, _ in study.plan("pretrained-text", (0.25,))] == ["amdim", "tvdim p=0.25",
                                                                                "tvdim+minilm p=0.25"]
    assert len(study.plan("noise")) == 1 + 4 * 9 + 1  # the noise sweep keeps its four levels by default


def test_pretrained_text_without_a_model_is_a_clear_error(study, tmp_path, monkeypatch):
    monkeypatch.setattr(study, "_minilm", lambda: "")
    args = argparse.Namespace(experiment="pretrained-text", noise_levels="", text_model="", out=str(tmp_path))
    with pytest.raises(SystemExit, match="--text-model PATH"):
        study.run(args)
    assert not any(tmp_path.iterdir())  # nothing written before the error


def test_peers_plan_puts_every_family_on_the_same_footing(study):
    runs = study.plan("peers")
    labels = [label for label, _, _ in runs]
    assert labels[:13] == ["random", "amdim", "simclr", "tvdim", "tvdim-nce", "slip", "clip", "simclr+rank",
                           "lightly-simclr", "lightly-byol", "lightly-vicreg", "lightly-vicreg lars", "open_clip-clip"]
    assert dict((lab, m) for lab, m, _ in runs)["lightly-byol"] == "peer:lightly-byol"  # the peer's own code
    assert runs[7] == ("simclr+rank", "simclr", ["loss.inter_term=rank"])  # SimCLR + the ranking term
    # VICReg also with lightly's benchmark optimiser (its example's SGD diverges), passed on as the peer's option
    assert runs[11] == ("lightly-vicreg lars", "peer:lightly-vicreg", ["peer.optimizer=lars"])
    assert study.peer_kwargs(runs[11][2]) == {"optimizer": "lars"}
    # only the text rows are repeated with swapped captions, each with the same overrides plus the noise rate
    noisy = runs[13:]
    assert [label for label, _, _ in noisy] == [f"{m} p=0.5" for m in study.PEER_TEXT_ROWS]
    assert all(extra[-1] == "noise=0.5" for _, _, extra in noisy) and noisy[4][2] == ["loss.inter_term=rank",
                                                                                     "noise=0.5"]
    assert len(study.plan("peers", (0.0,))) == 13 and len(study.plan("peers", (0.25, 0.5))) == 25


def test_open_clip_scores_merge_into_its_trunks_evaluation(study):
    ev = {"tasks": {"label": {"n_classes": 31, "linear": 0.5}}}
    study._merge_open_clip(ev, {"retrieval": {"i2t_R@1": 0.1},
                                "zeroshot": {"label": {"n_classes": 31, "zeroshot": 0.2, "zeroshot_balanced": 0.19}}})
    assert ev == {"tasks": {"label": {"n_classes": 31, "linear": 0.5, "zeroshot": 0.2, "zeroshot_balanced": 0.19}},
                  "retrieval": {"i2t_R@1": 0.1}}


def test_peers_report_compares_each_tvdim_row_with_every_other_row(study, tmp_path):
    settings = dict(SETTINGS, backbone="resnet18", size=64, steps=200)
    rows = []
    for seed in (0, 1):
        for label, acc in (("tvdim", 0.40), ("tvdim-nce", 0.38), ("lightly-simclr", 0.30), ("open_clip-clip", 0.395)):
            r = record("peers", label, label, seed, acc + 0.005 * seed, settings)
            r["eval"]["tasks"]["label"].update(linear_10shot=acc / 2, logreg=acc + 0.01)
            rows.append(r)
        noisy = record("peers", "tvdim p=0.5", "tvdim", seed, 0.33 + 0.005 * seed, settings)
        noisy["eval"]["tasks"]["label"]["linear_10shot"] = 0.1
        rows.append(noisy)
    args = argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep"))
    study.report(args)
    text = (tmp_path / "rep" / "study.md").read_text()
    assert "![peers](peers_rsicd_200steps.png)" in text and (tmp_path / "rep" / "peers_rsicd_200steps.png").exists()
    block = text.split("tvdim against the other rows, linear (points")[1].split("\n\n")[1]
    assert table_row(block, "lightly-simclr")[2:] == ["+10.0", "yes"]  # 40.25 - 30.25, sd 0.35
    assert table_row(block, "open_clip-clip")[2:] == ["+0.5", "no"]  # within twice the sd
    assert "| tvdim p=0.5 |" not in block  # clean rows are compared with clean rows only
    assert table_row(text, "tvdim")[0:2] == ["tvdim", "2"]


def test_a_failed_run_is_listed_and_a_duplicate_counts_once(study, tmp_path):
    rows = [record("main", "amdim", "amdim", 0, 0.30), record("main", "amdim", "amdim", 0, 0.30),
            record("main", "amdim", "amdim", 1, 0.32)]
    rows.append({"experiment": "main", "label": "tvdim", "method": "tvdim", "seed": 0, "failed": "non-finite loss at "
                 "step 7", "settings": SETTINGS, "machine": "cpu", "date": "2026-01-01T00:00:00+00:00"})
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    text = (tmp_path / "rep" / "study.md").read_text()
    assert "- main / tvdim seed 0: non-finite loss at step 7" in text
    assert table_row(text, "amdim")[1] == "2" and table_row(text, "amdim")[2] == "31.0 ± 1.4"


def test_a_peer_that_diverges_is_recorded_and_the_study_goes_on(study, tmp_path, monkeypatch):
    calls = []

    def diverge(peer, *a):
        calls.append(peer)
        raise SystemExit(f"{peer}: non-finite loss at step 7")

    monkeypatch.setattr(study, "_train_peer", diverge)
    args = argparse.Namespace(experiment="peers", dataset="rsicd", noise_levels="", text_model="",
                              out=str(tmp_path / "out"), data=str(tmp_path), workers=0, size=64, ndf=32, n_rkhs=256,
                              n_depth=1, steps=200, batch=64, warmup=50, device="cpu", probe_epochs=1,
                              set=["model.backbone=resnet18"], seeds="0,1", methods="",
                              only="lightly-vicreg,lightly-byol", task="label", val=False, transfer=False)
    study.run(args)
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert calls == ["lightly-byol", "lightly-vicreg"] * 2  # every planned run was tried
    assert [(r["label"], r["seed"]) for r in lines] == [("lightly-byol", 0), ("lightly-vicreg", 0),
                                                        ("lightly-byol", 1), ("lightly-vicreg", 1)]
    assert lines[1]["failed"] == "lightly-vicreg: non-finite loss at step 7" and "eval" not in lines[1]
    assert all(r["code"] == study.provenance()["code"] and "torch" in r["versions"] for r in lines)  # what ran
    study.run(args)  # a failure is a result: not tried again
    assert len(calls) == 4


def _run_args(tmp_path, **kw):
    base = dict(experiment="peers", dataset="rsicd", noise_levels="", text_model="", out=str(tmp_path / "out"),
                data=str(tmp_path), workers=0, size=64, ndf=32, n_rkhs=256, n_depth=1, steps=200, batch=64, warmup=50,
                device="cpu", probe_epochs=1, set=["model.backbone=resnet18"], seeds="0", methods="", only="",
                task="label", val=False, transfer=False)
    return argparse.Namespace(**(base | kw))


def test_ablation_rows_hand_their_peer_options_to_the_peer_only(study, tmp_path, monkeypatch):
    seen = []

    class FakePeers:
        OPEN_CLIP = "open_clip-clip"

        @staticmethod
        def train_peer(peer, cfg_path, overrides, *common, device, ckpt_every, **kw):
            assert ckpt_every == 200  # a cut-off peer run resumes: checkpoints every min(steps, CKPT_EVERY) steps
            seen.append((peer, kw, overrides))
            raise SystemExit("stopped by the test")

    monkeypatch.setattr(study, "_peers", lambda: FakePeers)
    labels = [label for label, _, _ in study.plan("peers-ablation")]
    assert labels == ["simclr t=0.5", "lightly-simclr t=0.1", "lightly-simclr tvdim-optim",
                      "lightly-simclr t=0.1 tvdim-optim", "lightly-simclr tvdim-views", "lightly-simclr tvdim-recipe",
                      "lightly-simclr tvdim-recipe tvdim-head", "lightly-simclr tvdim-recipe joint",
                      "lightly-simclr tvdim-all", "clip lr=5e-4", "tvdim lr=5e-4", "tvdim lr=5e-4 p=0.5"]
    study.run(_run_args(tmp_path, experiment="peers-ablation", only=",".join(labels[1:9])))
    recipe = {"temperature": 0.1, "optimizer": "tvdim", "views": "tvdim"}
    assert [(p, kw) for p, kw, _ in seen] == [("lightly-simclr", {"temperature": 0.1}),
                                             ("lightly-simclr", {"optimizer": "tvdim"}),
                                             ("lightly-simclr", {"temperature": 0.1, "optimizer": "tvdim"}),
                                             ("lightly-simclr", {"views": "tvdim"}),
                                             ("lightly-simclr", recipe),
                                             ("lightly-simclr", recipe | {"head": "tvdim"}),
                                             ("lightly-simclr", recipe | {"forward": "joint"}),
                                             ("lightly-simclr", recipe | {"head": "tvdim", "forward": "joint"})]
    assert not any(o.startswith("peer.") for _, _, overrides in seen for o in overrides)  # never a tvdim key
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert lines[2]["overrides"] == ["peer.temperature=0.1", "peer.optimizer=tvdim"]  # what made the row


def test_a_misspelt_peer_option_stops_the_study_before_any_run(study, tmp_path, monkeypatch):
    monkeypatch.setattr(study, "ABLATION_ROWS", (("x", "peer:lightly-simclr", ["peer.temprature=0.1"]),))
    with pytest.raises(SystemExit, match="temprature"):
        study.run(_run_args(tmp_path, experiment="peers-ablation"))
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_ablation_report_borrows_the_unchanged_recipes_from_the_peers_runs(study, tmp_path):
    settings = dict(SETTINGS, backbone="resnet18", size=64, steps=200)
    rows = [record("peers", lab, lab, s, acc + 0.01 * s, settings) for s in (0, 1)
            for lab, acc in (("simclr", 0.33), ("lightly-simclr", 0.30), ("clip", 0.34), ("amdim", 0.31))]
    rows += [record("peers", "simclr", "simclr", 0, 0.9, dict(settings, steps=1600))]  # another regime: not borrowed
    rows += [record("peers-ablation", "lightly-simclr t=0.1", "lightly-simclr", s, 0.32, settings) for s in (0, 1)]
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    block = (tmp_path / "rep" / "study.md").read_text().split("### rsicd: peers-ablation, 200 steps")[1]
    labels = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    assert labels[1:] == ["simclr (peers)", "lightly-simclr (peers)", "clip (peers)", "lightly-simclr t=0.1"]
    assert table_row(block, "simclr (peers)")[1:3] == ["2", "33.5 ± 0.7"]
    assert "Rows marked (peers)" in block and "total wall time 2.0 min" in block


def test_the_aim_table_sets_the_val_chosen_tvdim_rows_against_every_peer_row(study, tmp_path):
    settings = dict(SETTINGS, backbone="resnet18", size=64, steps=400)

    def rec(exp, label, seed, linear, shot, st=settings):
        r = record(exp, label, label.split(" ")[0], seed, linear, st)
        r["eval"]["tasks"]["label"]["linear_10shot"] = shot
        return r

    rows = [rec("peers", lab, s, acc + 0.005 * s, shot + 0.005 * s) for s in (0, 1, 2)
            for lab, acc, shot in (("open_clip-clip", 0.36, 0.28), ("lightly-simclr", 0.30, 0.22),
                                   ("open_clip-clip p=0.5", 0.31, 0.22), ("tvdim", 0.50, 0.50))]
    rows += [rec("peers", "lightly-byol", 0, 0.2, 0.1)]  # one seed: no standard deviation, no comparison
    rows += [rec("peers", "open_clip-clip", s, 0.9, 0.9, dict(settings, steps=200)) for s in (0, 1)]  # other regime
    rows += [rec("peers-ablation", "tvdim lr=5e-4", s, 0.40 + 0.005 * s, 0.29 + 0.005 * s) for s in (0, 1, 2)]
    rows += [rec("peers-ablation", "tvdim lr=5e-4 p=0.5", s, 0.33 + 0.02 * s, 0.25) for s in (0, 1)]
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    block = (tmp_path / "rep" / "study.md").read_text().split("### rsicd: peers-ablation (cpu)")[1]
    aim = [line.strip("| ").split(" | ") for line in block.split("| tvdim row | peer row")[1].splitlines()[2:] if line]
    assert [(a[0], a[1]) for a in aim] == [
        ("tvdim lr=5e-4", "lightly-simclr"), ("tvdim lr=5e-4", "open_clip-clip"),  # the peers only, not our tvdim row
        ("tvdim lr=5e-4 p=0.5", "lightly-simclr"),  # an image-only peer never reads captions: its clean row
        ("tvdim lr=5e-4 p=0.5", "open_clip-clip p=0.5")]
    assert aim[1][2:] == ["3 / 3", "+4.0", "yes", "+1.0", "no"]  # 10-shot: 1.0 < 2 x 0.5 sd
    assert aim[3][2:] == ["2 / 3", "+2.5", "no", "+2.5", "yes"]  # linear: 2.5 < 2 x 1.4 sd (the noisier seeds)


def test_the_slip_table_tests_slips_published_ordering_both_ways(study, tmp_path):
    def rec(label, seed, linear, shot):
        r = record("peers", label, label.split(" ")[0], seed, linear + 0.005 * seed)
        r["eval"]["tasks"]["label"]["linear_10shot"] = shot + 0.005 * seed
        return r

    rows = [rec(lab, s, acc, shot) for s in (0, 1, 2)
            for lab, acc, shot in (("slip", 0.40, 0.30), ("clip", 0.35, 0.30), ("simclr", 0.45, 0.20),
                                   ("slip p=0.5", 0.33, 0.25), ("clip p=0.5", 0.30, 0.30), ("simclr p=0.5", 0.9, 0.9))]
    rows += [rec("tvdim", 0, 0.5, 0.5)]
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    text = (tmp_path / "rep" / "study.md").read_text()
    table = text.split("| SLIP row | other row")[1].split("\n\n")[0]
    got = [line.strip("| ").split(" | ") for line in table.splitlines()[2:]]
    assert got == [["slip", "clip", "3 / 3", "+5.0", "above", "+0.0", "level"],
                   ["slip", "simclr", "3 / 3", "-5.0", "below", "+10.0", "above"],
                   ["slip p=0.5", "clip p=0.5", "3 / 3", "+3.0", "above", "-5.0", "below"],
                   # SimCLR reads no caption: at 50 % swapped SLIP is set against its clean row
                   ["slip p=0.5", "simclr", "3 / 3", "-12.0", "below", "+5.0", "above"]]


def test_a_probe_with_under_two_seeds_is_not_compared(study, tmp_path):
    rows = []
    for s in (0, 1, 2):
        for label, acc in (("slip", 0.40), ("clip", 0.35)):
            r = record("peers", label, label, s, acc + 0.005 * s)
            if label == "slip" or s == 0:  # clip has a 10-shot score for seed 0 only (an older run, say)
                r["eval"]["tasks"]["label"]["linear_10shot"] = acc
            rows.append(r)
    study.report(argparse.Namespace(results=[str(write(tmp_path, rows))], out=str(tmp_path / "rep")))
    text = (tmp_path / "rep" / "study.md").read_text()
    table = text.split("| SLIP row | other row")[1].split("\n\n")[0]
    assert [line.strip("| ").split(" | ") for line in table.splitlines()[2:]] == [
        ["slip", "clip", "3 / 3", "+5.0", "above", "-", "-"]]  # no std from one seed: no verdict


def test_a_cut_off_study_run_continues_where_it_stopped(study, tmp_path, capsys):
    from tvdim.config import load_config

    out = tmp_path / "run"
    tiny = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=32",
            "data.synth_test=16", "train.progress=false", "train.device=cpu", "train.method=amdim",
            f"train.out_dir={out}", "train.ckpt_every=2"]
    assert study._pretrain_or_resume(load_config(overrides=tiny + ["train.steps=2"])).step == 2  # cut off at 2
    res = study._pretrain_or_resume(load_config(overrides=tiny + ["train.steps=4"]))
    log = (out / "train.log").read_text()
    assert res.step == 4 and "resuming" in log and "resumed from" in log
    # another run's checkpoint in the folder (here: another seed) is not continued: the run starts afresh
    res = study._pretrain_or_resume(load_config(overrides=tiny + ["train.steps=4", "train.seed=1"]))
    assert res.step == 4 and "starting it afresh" in capsys.readouterr().out
    assert "resuming" not in (out / "train.log").read_text()


def test_val_target_scores_on_rsicd_val_and_never_on_test(study, tmp_path, monkeypatch):
    import tvdim.eval.evaluate as ev_mod

    rows = [record("peers", "tvdim", "tvdim", 0, 0.3)]
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"x")
    rows[0]["eval"]["checkpoint"] = str(ckpt)
    write(tmp_path, rows)
    seen, texts = [], []

    def fake_evaluate(path, data, ecfg, device, seed):
        seen.append((data.eval_train_path, data.eval_test_path, seed))
        texts.append(data.text_key)
        return {"tasks": {"label": {"linear": 0.5, "mlp": 0.5, "knn": 0.5}}}

    monkeypatch.setattr(ev_mod, "evaluate", fake_evaluate)
    args = argparse.Namespace(runs=str(tmp_path), experiment="peers", seeds="0", only="", data="/d", target="rsicd-val",
                              out=str(tmp_path / "v"), probe_epochs=1, workers=0, device="cpu")
    study.transfer(args)
    assert seen == [("/d/rsicd/rsicd-train-{000000..000008}.tar", "/d/rsicd/rsicd-val-{000000..000001}.tar", 0)]
    assert texts == ["txt:only"]  # one caption per val image, as the test split is scored
    line = json.loads((tmp_path / "v" / "results.jsonl").read_text())
    assert (line["experiment"], line["dataset"], line["label"]) == ("val", "rsicd-val", "tvdim")
    assert line["code"] == study.provenance()["code"] and line["versions"] == study.provenance()["versions"]
    study.transfer(args)  # done: not scored again
    assert len(seen) == 1
    study.transfer(argparse.Namespace(**(vars(args) | {"target": "cifar10"})))  # another target: its own line
    assert seen[-1][1] == "/d/cifar10/cifar10-test-{000000..000001}.tar"


def test_provenance_names_the_commit_and_whether_tracked_files_differ_from_it(study, tmp_path, monkeypatch):
    import platform
    import subprocess

    def git(*a):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    fresh = study.provenance.__wrapped__  # uncached: the tree changes within this test
    assert fresh(tmp_path)["code"] == "unknown"  # not a git checkout
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "a")
    assert fresh(tmp_path)["code"] == git("rev-parse", "HEAD")[:12]
    (tmp_path / "new.py").write_text("")  # untracked files are not the code that ran
    assert fresh(tmp_path)["code"] == git("rev-parse", "HEAD")[:12]
    (tmp_path / "a.py").write_text("x = 2\n")
    assert fresh(tmp_path)["code"] == git("rev-parse", "HEAD")[:12] + "+dirty"
    monkeypatch.setattr(study, "VERSIONED", ("torch", "no-such-distribution"))
    versions = fresh(tmp_path)["versions"]
    assert set(versions) == {"python", "torch"} and versions["python"] == platform.python_version()
    import torch

    assert torch.__version__.startswith(versions["torch"])


@pytest.mark.parametrize("cmd,reads", [("run", True), ("transfer", True), ("detect", True), ("report", False)])
def test_provenance_is_read_when_the_process_starts_not_when_its_first_line_is_written(study, tmp_path, monkeypatch,
                                                                                       cmd, reads):
    seen = []
    monkeypatch.setattr(study, cmd, lambda args: seen.append(study.provenance.cache_info().currsize))
    monkeypatch.setattr(sys, "argv", ["study.py", cmd, "--out", str(tmp_path)])
    study.provenance.cache_clear()
    study.main()
    study.provenance.cache_clear()
    assert seen == [1 if reads else 0]  # a commit made while a run trains is not the code it ran
