"""What ``FNN.fit`` returns: per-epoch figures and how training ended."""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class History:
    """Per-epoch training record.

    Attributes
    ----------
    metrics : dict of str to list of float
        One list per figure (``loss``, ``accuracy``, ``val_loss``,
        ``val_accuracy``, ``epoch_time_s``), one entry per completed epoch.
    diverged : bool
        True when the training loss became NaN or infinite; training stopped
        at once and the failing epoch is not in ``metrics``.
    stop_reason : str or None
        Why training ended before ``epochs`` ("diverged ...", "early stopping ...",
        "stopped by callback ..."), or None when it ran to the end.
    best_epoch : int or None
        With early stopping, the epoch whose weights were kept.
    """

    metrics: dict = field(default_factory=dict)
    diverged: bool = False
    stop_reason: str | None = None
    best_epoch: int | None = None

    def append(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            self.metrics.setdefault(key, []).append(value)

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.metrics.get("loss", ()))

    def __getitem__(self, key):
        return self.metrics[key]

    def __contains__(self, key):
        return key in self.metrics
