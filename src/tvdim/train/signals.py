"""Stop signals (SIGTERM / SIGUSR1, preemption): the loop checkpoints and exits; loader workers ignore them."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator

import torch


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM / SIGUSR1 to the main process, which checkpoints before they stop."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


class StopWaiting(BaseException):
    """A stop signal arrived while the loop was waiting for data (BaseException: no data code swallows it)."""


class StopFlag:
    """Set by SIGTERM / SIGUSR1 (preemption): the loop checkpoints and exits at the next step boundary, or at
    once while it waits for data (:meth:`waiting`)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self._interrupt = False

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)):
            if sig is not None:
                try:
                    self._old[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread
                    pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if self._interrupt:
            self._interrupt = False
            raise StopWaiting()

    @contextmanager
    def waiting(self, enabled: bool = True) -> Iterator[None]:
        """While waiting for data a signal raises :class:`StopWaiting` (one process only: ranks must agree)."""
        self._interrupt = enabled
        try:
            if enabled and self.signum is not None:
                raise StopWaiting()
            yield
        finally:
            self._interrupt = False

    def requested(self, world_size: int, device: torch.device) -> bool:
        """True when any rank got a signal (all ranks agree, so they checkpoint at the same step)."""
        if world_size == 1:
            return self.signum is not None
        flag = torch.tensor([float(self.signum is not None)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


__all__ = ["StopFlag", "StopWaiting", "ignore_stop_signals"]
