"""Run logs: JSONL records (machine-readable), TensorBoard scalars, and a text log file; rank 0 only."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("tvdim")


def setup_logging(out_dir: Path | None = None, level: int = logging.INFO) -> None:
    """A ``<out_dir>/train.log`` handler on the ``tvdim`` logger (idempotent); the console is the caller's
    (the CLI configures it)."""
    root = logging.getLogger("tvdim")
    root.setLevel(level)
    if out_dir is not None:
        path = str(Path(out_dir) / "train.log")
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(Path(path).resolve())
                   for h in root.handlers):
            fh = logging.FileHandler(path)
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.addHandler(fh)


class RunLogger:
    """Appends one JSON object per record to ``<out_dir>/metrics.jsonl`` and mirrors numbers to TensorBoard."""

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tb"))
            except ImportError:  # tensorboard is a dependency, but logs must never kill a run
                log.warning("tensorboard is not installed: TensorBoard logging is off")

    def write(self, record: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                 for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")
        if self.tb is not None:
            for k, v in clean.items():
                if isinstance(v, float) and math.isfinite(v) and k != "step":
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
