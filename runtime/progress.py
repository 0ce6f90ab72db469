"""A line of progress for long work, shown only when the work turns out to be long."""
from __future__ import annotations

SHOW_AFTER_SECONDS = 0.25


class Progress:
    """Named stages of one job; tqdm draws them once the job has taken SHOW_AFTER_SECONDS."""

    def __init__(self, description: str, stages: int, enabled: bool = True):
        self._bar = None
        if enabled:
            from tqdm import tqdm
            self._bar = tqdm(total=stages, desc=description, unit="stage", delay=SHOW_AFTER_SECONDS, leave=False,
                             bar_format="{desc} [{elapsed}]")
        self._description = description

    def stage(self, name: str) -> None:
        """Starting stage `name` (the previous one is done)."""
        if self._bar is not None:
            self._bar.set_description_str(f"{self._description}: {name}", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NoProgress(Progress):
    def __init__(self):
        super().__init__("", 0, enabled=False)
