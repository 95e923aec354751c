"""Training progress for a person: a bar on a terminal, plain lines in a log.

Off a terminal (nohup, CI, Slurm) a tqdm bar prints nothing, so a 3-hour run would be silent; there a line
goes to stderr every `every_seconds` seconds and every tenth of the run, whichever comes first.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

SHOWN = ("loss", "mse_per_pixel", "kl", "d_loss", "gan")  # the main values, in this order


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    def __init__(self, total: int, initial: int, batch_size: int, every_seconds: float = 60.0, stream=None,
                 enabled: bool = True):
        self.total, self.batch_size, self.every_seconds, self.enabled = total, batch_size, every_seconds, enabled
        self.stream = stream or sys.stderr
        self.every_steps = max(1, (total - initial) // 10)
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                        file=self.stream) if enabled and self.stream.isatty() else None
        self.last_step, self.last_time = initial, time.monotonic()

    def update(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        shown = {k: values[k] for k in SHOWN if k in values}
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if step % 10 == 0:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
            return
        now = time.monotonic()
        if now - self.last_time < self.every_seconds and step % self.every_steps and step != self.total:
            return
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        eta = _duration((self.total - step) / rate) if rate > 0 else "?"
        numbers = " ".join(f"{k} {v:.4g}" for k, v in shown.items())
        print(f"step {step}/{self.total} ({step / self.total:.0%}), {rate * self.batch_size:.1f} images/s, "
              f"ETA {eta}, {numbers}", file=self.stream, flush=True)
        self.last_step, self.last_time = step, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
