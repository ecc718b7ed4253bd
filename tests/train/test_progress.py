"""Progress output: a tqdm bar on a terminal, plain lines at most every N seconds elsewhere (no carriage returns
in a log file)."""
from __future__ import annotations

import io
import subprocess
import sys

from tvdim.train.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_writes_plain_lines_at_most_every_interval():
    out = io.StringIO()
    p = Progress(100, 0, True, "slip", stream=out, every=3600.0)
    p.set_postfix({"loss": "1.234"})
    for _ in range(100):
        p.update()
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == [lines[0]] and lines[0].startswith("slip: step 100/100 (100 %), loss 1.234, ")  # only the end


def test_every_interval_elapsed_gives_one_line_per_update():
    out = io.StringIO()
    p = Progress(4, 1, True, "amdim", stream=out, every=0.0)  # resumed at step 1
    for _ in range(3):
        p.update()
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "amdim: step 2/4 (50 %)", "amdim: step 3/4 (75 %)", "amdim: step 4/4 (100 %)"]


def test_a_terminal_gets_the_bar_and_disabled_writes_nothing():
    tty = FakeTTY()
    p = Progress(5, 0, True, "tvdim", stream=tty)
    assert p.bar is not None and not p.plain
    p.update()
    p.close()
    assert "\r" in tty.getvalue()
    quiet = io.StringIO()
    p = Progress(5, 0, False, "tvdim", stream=quiet, every=0.0)
    p.update()
    assert quiet.getvalue() == "" and p.bar is None


def test_pretrain_into_a_log_file_has_no_bar_redraws(tmp_path):
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        code = subprocess.call([sys.executable, "-m", "tvdim.cli", "pretrain", "--out", str(tmp_path / "run"),
                                "--method", "amdim", "model.ndf=8", "model.n_rkhs=16", "model.n_depth=1",
                                "train.batch_size=4", "train.steps=3", "data.synth_train=16", "data.synth_test=8",
                                "train.device=cpu"], stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text()
    assert code == 0 and "\r" not in text and "amdim: step 3/3 (100 %)" in text
