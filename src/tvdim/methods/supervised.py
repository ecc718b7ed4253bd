"""Supervised upper bound: the same encoder trained with labels (AMDIM's MLP classifier on r1 of view 1)."""
from __future__ import annotations

from ..config import Config
from ..distributed import global_mean_share
from ..errors import ConfigError, DataError
from ..losses import classifier_loss
from ..models.heads import mlp_head
from .base import Method, StepOutput


class SupervisedMethod(Method):
    name = "supervised"
    uses_all_parameters = False  # the r5 / r7 heads are not trained

    def __init__(self, cfg: Config, tasks: dict[str, int], vocab_size: int | None = None) -> None:
        super().__init__(cfg, tasks, vocab_size)
        self.image_encoder.want_local = False  # the classifier reads r1 alone
        if not tasks:
            raise DataError("method 'supervised' needs labelled training data, and this data has no label (set "
                            "data.label_key for a table, a .cls file per sample for shards, or use a "
                            "self-supervised method)")
        task = cfg.train.probe_task or next(iter(tasks))
        if task not in tasks:
            raise ConfigError(f"train.probe_task '{task}' is not a label of the data; labels: {', '.join(tasks)}")
        self.task = task
        self.head = mlp_head(self.image_encoder.n_rkhs, tasks[task])

    def forward(self, batch: dict) -> StepOutput:
        r1 = self.image_encoder(batch["x1"]).r1
        y = batch["labels"][self.task]
        loss = global_mean_share(y >= 0) * classifier_loss(self.head(r1.float()), y)
        out = StepOutput(loss, {f"sup/{self.task}": loss.detach()})
        out.loss = loss + self.probe_step(r1, batch["labels"], out)
        out.terms["total"] = out.loss.detach()
        return out
