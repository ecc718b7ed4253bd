"""``tvdim demo``: pretrain random / amdim / clip / tvdim on the built-in data, evaluate, report."""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from .config import Config, load_config, replace, to_plain
from .data.sources import caption_corpus
from .eval.evaluate import evaluate, markdown_table
from .models.tokenizer import CaptionTokenizer
from .report import write_report
from .train.trainer import pretrain

DEMO_METHODS = ("random", "amdim", "clip", "tvdim")
log = logging.getLogger("tvdim.demo")


class _Stopped(BaseException):
    """A stop signal (SIGTERM / SIGUSR1) arrived during an evaluation (BaseException: nothing swallows it)."""


@contextlib.contextmanager
def _stop_raises() -> Iterator[None]:
    """While evaluating, a stop signal raises :class:`_Stopped` (evaluation writes no state worth finishing:
    ``--resume`` evaluates the finished run again); the previous handlers are restored afterwards."""
    def handle(signum: int, frame: Any) -> None:
        raise _Stopped()

    old: dict[int, Any] = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)):
        if sig is not None:
            try:
                old[sig] = signal.signal(sig, handle)
            except ValueError:  # not the main thread
                pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def demo_config_path() -> Path:
    return Path(str(resources.files("tvdim") / "configs" / "demo.yaml"))


def run_demo(out_dir: str | Path = "runs/demo", overrides: list[str] | None = None,
             methods: tuple[str, ...] = DEMO_METHODS, resume: bool = False) -> dict[str, Any] | None:
    """Run every method on the same data and settings; write results.json, report.md and plots in ``out_dir``.

    Each method's run folder is started afresh (``resume=False``) or continued (``resume=True``: finished runs
    are kept, a run cut off by a stop signal goes on). A stop signal (SIGTERM / SIGUSR1) stops the demo after the
    interrupted run's checkpoint, or at once during an evaluation (``--resume`` evaluates that run again): nothing
    is evaluated or reported, the command to continue is printed, and the
    function returns ``None``.
    """
    out = Path(out_dir)
    base: Config = load_config(demo_config_path(), overrides)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "report.md"):  # a previous demo's results must not pass for this one's
        (out / name).unlink(missing_ok=True)
    if not base.text.tokenizer_path:  # one tokenizer for every text method, so they compare on equal terms
        tok_path = out / "tokenizer.json"
        if not (resume and tok_path.is_file()):  # a resumed run keeps the tokenizer it was trained with
            CaptionTokenizer.train(caption_corpus(base.data), base.text.vocab_size, base.text.max_len).save(tok_path)
        base = replace(base, text={"tokenizer_path": str(tok_path)})
    results: dict[str, Any] = {}
    run_dirs: dict[str, Path] = {}
    t_all = time.perf_counter()
    for m in methods:
        cfg = replace(base, train={"method": m, "out_dir": str(out / "runs" / m)})
        t0 = time.perf_counter()
        res = pretrain(cfg, resume="latest" if resume else None, overwrite=not resume)
        t1 = time.perf_counter()
        again = " ".join(["tvdim demo --out", str(out), "--resume", "--methods", ",".join(methods),
                          *(overrides or [])])
        if res.stopped_early:
            print(f"tvdim: demo stopped by a signal while pretraining {m} (step {res.step} of {cfg.train.steps}); "
                  f"no results are reported for unfinished runs. Continue with:\n  {again}", file=sys.stderr)
            return None
        try:
            with _stop_raises():
                results[m] = evaluate(res.checkpoint, out_dir=out / "runs" / m / "eval")
        except _Stopped:
            print(f"tvdim: demo stopped by a signal while evaluating {m} (its pretraining is finished and kept); "
                  f"no results are reported. Continue with:\n  {again}", file=sys.stderr)
            return None
        results[m]["pretrain_seconds"] = round(t1 - t0, 1)
        run_dirs[m] = res.out_dir
        log.info("%s: pretrain %.0fs, eval %.0fs", m, t1 - t0, time.perf_counter() - t1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "config.json").write_text(json.dumps(to_plain(base), indent=2))
    total = time.perf_counter() - t_all
    notes = (f"Built-in synthetic data (shapes with colours; captions name them). {base.train.steps} steps of batch "
             f"{base.train.batch_size} at {base.model.image_size} px per method; total wall time {total:.0f} s"
             f"{' (this invocation; it resumed earlier runs)' if resume else ''}.")
    report = write_report(out, results, run_dirs, "tvdim demo", notes)
    print(markdown_table(results))
    print(f"\nreport: {report}\nresults: {out / 'results.json'}")
    return results
