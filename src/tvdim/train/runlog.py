"""Run logs: JSONL records (machine-readable), TensorBoard scalars, and a text log file; rank 0 only."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("tvdim")


STEPS = "tvdim.steps"  # per-step records: train.log only (the console has the progress bar)


def setup_logging(out_dir: Path | None = None, level: int = logging.INFO) -> logging.Handler | None:
    """Add a ``<out_dir>/train.log`` handler to the ``tvdim`` logger (and to the file-only ``tvdim.steps`` logger);
    returns it, for :func:`close_logging` when the run ends. The console is the caller's (the CLI configures it)."""
    root = logging.getLogger("tvdim")
    root.setLevel(level)
    steps = logging.getLogger(STEPS)
    steps.setLevel(level)
    steps.propagate = False
    if out_dir is None:
        return None
    fh = logging.FileHandler(Path(out_dir) / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    steps.addHandler(fh)
    return fh


def close_logging(handler: logging.Handler | None) -> None:
    """Detach and close a handler from :func:`setup_logging` (a later run in this process logs elsewhere)."""
    if handler is not None:
        for name in ("tvdim", STEPS):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def json_safe(value: Any) -> Any:
    """NaN / infinity as ``None`` (JSON has no NaN; ``json.dumps`` would write a bare ``NaN``), containers
    recursively."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class RunLogger:
    """Appends one JSON object per record to ``<out_dir>/metrics.jsonl`` and mirrors numbers to TensorBoard."""

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True, purge_step: int | None = None
                 ) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: a resumed run drops TensorBoard events logged after its checkpoint
                self.tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=purge_step)
            except ImportError:  # tensorboard is a dependency, but logs must never kill a run
                log.warning("tensorboard is not installed: TensorBoard logging is off")

    def write(self, record: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        clean = {k: json_safe(v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")
        if self.tb is not None:
            for k, v in clean.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
