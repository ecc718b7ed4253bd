"""One rank of the multi-process test run: ``python rank_worker.py RANK WORLD PORT CASES_JSON OUT_DIR``.

Joins a gloo process group on 127.0.0.1:PORT, runs :func:`dist_harness.one_step` for every case in CASES_JSON
(a list of ``[method, [overrides...]]``), then a 2-step ``tvdim pretrain`` under the same process group (rank 0
writes the checkpoint in ``OUT_DIR/run``), and saves its results to ``OUT_DIR/rank<RANK>.pt``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dist_harness import TINY, one_step


def main() -> None:
    rank, world, port = (int(a) for a in sys.argv[1:4])
    cases = json.loads(Path(sys.argv[4]).read_text())
    out = Path(sys.argv[5])
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    results = [one_step(method, overrides, rank, world) for method, overrides in cases]

    from tvdim.config import load_config
    from tvdim.train.trainer import pretrain

    cfg = load_config(overrides=TINY + ["train.method=tvdim", "train.steps=2", "train.batch_size=4",
                                        "data.synth_train=32", "text.vocab_size=100", "train.progress=false",
                                        f"train.out_dir={out / 'run'}"])
    res = pretrain(cfg)
    torch.save({"cases": results, "pretrain_step": res.step}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
