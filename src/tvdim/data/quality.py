"""Bad-sample policy: skip, count, log the first few reasons, stop when too many are unusable.

Readers yield :class:`BadSample` instead of raising; :func:`filter_bad` drops them, records them in a
:class:`SkipTracker` and raises :class:`DataError` once more than ``max_bad_fraction`` of the samples seen are
unusable, or when a dataset yields no usable sample at all.

The fraction is judged over at least ``min_seen`` samples (50), so one early bad file does not stop a run, but the
stop is not delayed when waiting cannot change the outcome: with a 5 % limit, 50 samples may hold 2 bad ones, so
the 3rd bad sample among the first 50 stops at once. A finite pass (evaluation, ``filter_bad``) ends with the
plain fraction over everything it saw.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

from ..errors import DataError
from .sample import BadSample, Sample


class SkipTracker:
    """Counts usable / unusable samples and enforces ``max_bad_fraction``.

    Picklable (the logger is stored by name), so it can travel to data-loader workers; each worker then
    counts its own share.

    Args:
        max_bad_fraction: largest tolerated fraction of unusable samples (0.05 = 5 %).
        min_seen: before this many samples, stop only when more are bad than ``min_seen`` samples may hold
            (avoids stopping on sample 1 without delaying a certain stop).
        log_first: how many bad samples are logged (as warnings) and kept in ``summary()['first_reasons']``.
        logger: where warnings go (default ``logging.getLogger("tvdim.data")``).
        warn: log the first reasons (off for a second tracker that only enforces the limit).
    """

    def __init__(self, max_bad_fraction: float, min_seen: int = 50, log_first: int = 5,
                 logger: logging.Logger | None = None, warn: bool = True) -> None:
        self.max_bad_fraction = float(max_bad_fraction)
        self.min_seen = int(min_seen)
        self.log_first = int(log_first)
        self.warn = warn
        self.logger_name = (logger or logging.getLogger("tvdim.data")).name
        self.seen = 0
        self.n_bad = 0
        self.reasons: list[str] = []

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(self.logger_name)

    def ok(self, n: int = 1) -> None:
        """Record ``n`` usable samples."""
        self.seen += n

    def bad(self, key: str, reason: str, count: int = 1) -> None:
        """Record one unusable sample, or ``count`` lost ones with one reason (logged while fewer than
        ``log_first`` reasons have been kept)."""
        self.seen += count
        self.n_bad += count
        if len(self.reasons) < self.log_first:
            text = f"{key}: {reason}"
            self.reasons.append(text)
            if self.warn:
                self.logger.warning("skipping bad sample %s", text)

    @property
    def fraction(self) -> float:
        return self.n_bad / self.seen if self.seen else 0.0

    def record_batch(self, batch: dict[str, Any]) -> None:
        """Count a training batch from :class:`~tvdim.data.pipeline.Collator` (``bad``: (key, reason, count)
        records; ``usable``: samples drawn that were usable) and enforce the limit."""
        for key, reason, count in batch["bad"]:
            self.bad(key, reason, count)
        self.ok(batch["usable"])
        self.check()

    def check(self, final: bool = False) -> None:
        """Raise :class:`DataError` when the bad fraction exceeds the limit: over ``max(seen, min_seen)`` samples
        while running (a certain outcome is not waited for), over ``seen`` when ``final``."""
        if self.seen == 0:
            return
        judged = self.seen if final else max(self.seen, self.min_seen)
        if self.n_bad > self.max_bad_fraction * judged:
            raise DataError(f"{self.n_bad} of {self.seen} samples unusable ({100 * self.fraction:.1f}%) > "
                            f"max_bad_fraction={self.max_bad_fraction}; first reasons: " + "; ".join(self.reasons))

    def merge(self, other: "SkipTracker") -> None:
        """Add another tracker's counts (e.g. one from each worker)."""
        self.seen += other.seen
        self.n_bad += other.n_bad
        self.reasons.extend(other.reasons[: max(0, self.log_first - len(self.reasons))])

    def add_summary(self, summary: dict[str, Any]) -> None:
        """Add the counts of another tracker's :meth:`summary` (e.g. those kept with a data cache)."""
        self.seen += int(summary.get("seen", 0))
        self.n_bad += int(summary.get("bad", 0))
        self.reasons.extend(list(summary.get("first_reasons", []))[: max(0, self.log_first - len(self.reasons))])

    def summary(self) -> dict[str, Any]:
        """``{"seen", "bad", "fraction", "first_reasons"}`` for run logs."""
        return {"seen": self.seen, "bad": self.n_bad, "fraction": round(self.fraction, 6),
                "first_reasons": list(self.reasons)}

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def filter_bad(items: Iterable[Sample | BadSample], tracker: SkipTracker, path: str = "") -> Iterator[Sample]:
    """Yield only usable samples; count bad ones in ``tracker`` and stop via :class:`DataError` when too
    many are bad (checked as we go, and over the whole pass at its end) or when nothing usable came out
    (``no usable samples in <path>``)."""
    n_good = 0
    for item in items:
        if isinstance(item, BadSample):
            tracker.bad(item.key, item.reason, item.count)
            tracker.check()
            continue
        tracker.ok()
        n_good += 1
        yield item
    if n_good == 0:
        detail = f"; first reasons: {'; '.join(tracker.reasons)}" if tracker.reasons else ""
        raise DataError(f"no usable samples in {path or 'dataset'}{detail}")
    tracker.check(final=True)


__all__ = ["SkipTracker", "filter_bad"]
