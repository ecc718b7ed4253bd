"""Training progress on the console: tqdm's bar on a terminal; when the output is not a terminal (nohup, CI, a log
file) one plain line every ``every`` seconds instead of hundreds of carriage-return redraws."""
from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, initial: int, enabled: bool, desc: str, stream: IO[str] | None = None,
                 every: float = 30.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        tty = bool(isatty()) if callable(isatty) else False
        self.total, self.step, self.desc, self.every = total, initial, desc, every
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=self.stream) \
            if enabled and tty else None
        self.plain = enabled and not tty
        self.postfix: dict[str, Any] = {}
        self.t0 = self.t_last = time.perf_counter()
        self.start = initial

    def update(self, n: int = 1) -> None:
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.plain:
            now = time.perf_counter()
            if now - self.t_last >= self.every or self.step >= self.total:
                self.t_last = now
                self._line(now)

    def set_postfix(self, values: dict[str, Any]) -> None:
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def _line(self, now: float) -> None:
        done = self.step - self.start
        elapsed = now - self.t0
        eta = elapsed / done * (self.total - self.step) if done > 0 else float("nan")
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        self.stream.write(f"{self.desc}: step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f} %)"
                          f"{extra}, {elapsed:.0f} s elapsed, about {eta:.0f} s to go\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["Progress"]
