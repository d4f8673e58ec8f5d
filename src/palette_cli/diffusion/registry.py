"""The registry of processes: each process class by what a model file records of it, ``objective`` and
``prediction``, so that a file (or a training config) rebuilds its process by a lookup.

A file that records neither reads as ε diffusion (the first models); one that records an objective but no
prediction reads as that objective's first process below. A new process is one class (see
:mod:`palette_cli.diffusion.process`) and one entry here.
"""

from __future__ import annotations

from typing import Any

from .bridge import BridgeProcess, ChromaBridgeProcess
from .gaussian import EpsDiffusion, RegressionProcess, VDiffusion
from .preconditioned import PreconditionedBridgeProcess
from .process import Process

#: (objective, prediction) → process class; the first entry of an objective is its default.
PROCESSES: dict[tuple[str, str], type[Process]] = {
    (cls.objective, cls.prediction): cls
    for cls in (EpsDiffusion, VDiffusion, RegressionProcess, BridgeProcess, ChromaBridgeProcess,
                PreconditionedBridgeProcess)
}
#: The objectives, in the registry's order.
OBJECTIVES = tuple(dict.fromkeys(objective for objective, _ in PROCESSES))


def process_class(objective: str | None = None, prediction: str | None = None) -> type[Process]:
    """The class of the process a file or config names (none named: ε diffusion); a ``ValueError`` of one
    line for an objective or prediction this version does not know."""
    objective = objective or OBJECTIVES[0]
    candidates = [cls for (o, _), cls in PROCESSES.items() if o == objective]
    if not candidates:
        raise ValueError(f"the model's objective {objective!r} is not one this version can sample or train "
                         f"(known: {', '.join(OBJECTIVES)})")
    if not prediction:
        return candidates[0]
    for cls in candidates:
        if prediction == cls.prediction:
            return cls
    for cls in candidates:
        if prediction in cls.legacy_predictions:
            return cls
    raise ValueError(f"the model predicts {prediction!r}, which this version cannot sample or train (its "
                     f"{objective} models predict {' or '.join(cls.prediction for cls in candidates)})")


def process_from_metadata(extra: dict[str, Any], training: dict[str, Any] | None = None,
                          schedule: dict[str, Any] | None = None) -> Process:
    """The process a model file describes: what its ``extra`` records, else its training record's."""
    training = training or {}

    def recorded(key: str) -> Any:
        return extra.get(key) or training.get(key)

    objective, prediction = recorded("objective"), recorded("prediction")
    cls = process_class(str(objective) if objective else None, str(prediction) if prediction else None)
    return cls.from_spec(recorded("process"), schedule)
