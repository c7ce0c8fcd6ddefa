"""The quality gate's configuration: one small type, shared by the configuration loader (which the
``finetune`` CLI imports, so it stays light) and the CollectTrainingResults settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityGate:
    """Optional check on training results before anything is served.

    ``optional``: when the job left nothing the gate can measure (no usable validation metrics), let
    the run through instead of failing it.
    """

    max_validation_loss: float | None = None
    max_loss_ratio: float | None = None
    optional: bool = False

    @property
    def enabled(self) -> bool:
        return self.max_validation_loss is not None or self.max_loss_ratio is not None
