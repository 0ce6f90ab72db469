"""A line of progress for long work, shown only when the work turns out to be long, and the
seconds each of its stages took (where a compile's time goes)."""
from __future__ import annotations

import time

SHOW_AFTER_SECONDS = 0.25  # a job still running this long at a stage boundary gets its bar (and only
# then is tqdm imported, ~30 ms: a compile served from the cache never pays it)


class Progress:
    """Named stages of one job; tqdm draws them from the first stage that starts after the job has
    taken SHOW_AFTER_SECONDS.

    ``seconds`` maps each stage to the time spent in it, in the order the stages ran (a stage
    entered twice adds up); time before the first stage, and the bar's own, is not counted."""

    def __init__(self, description: str, stages: int, enabled: bool = True):
        self._bar = None
        self._enabled = enabled
        self._stages = stages
        self._description = description
        self.seconds: dict[str, float] = {}
        self._began = self._lap_start = time.perf_counter()
        self._current = None

    def stage(self, name: str, detail: str | None = None) -> None:
        """Starting stage `name` (the previous one is done); `detail` is shown after the name."""
        self._lap()
        self._current = name
        text = f"{self._description}: {name}{' ' + detail if detail else ''}"
        if self._bar is not None:
            self._bar.set_description_str(text, refresh=False)
            self._bar.update(1)
        elif self._enabled and self._lap_start - self._began >= SHOW_AFTER_SECONDS:
            from tqdm import tqdm
            self._bar = tqdm(total=self._stages, desc=text, unit="stage", leave=False,
                             bar_format="{desc} [{elapsed}]", initial=len(self.seconds))
            self._lap_start = time.perf_counter()  # drawing the bar is no stage's work

    def _lap(self) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self.seconds[self._current] = self.seconds.get(self._current, 0.0) + now - self._lap_start
        self._lap_start = now

    def close(self) -> None:
        self._lap()
        self._current = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NoProgress(Progress):
    def __init__(self):
        super().__init__("", 0, enabled=False)
