"""Every projection, by name."""

from projections.projector import Projector
from projections.rollups import RollupProjector
from projections.task_view import TaskViewProjector

TASK_VIEW = TaskViewProjector()
ROLLUPS = RollupProjector()

# Projected inside each command's transaction; never by the runner.
INLINE: tuple[Projector, ...] = (TASK_VIEW,)
# Projected by the runner, behind the log.
ASYNCHRONOUS: tuple[Projector, ...] = (ROLLUPS,)
PROJECTORS: dict[str, Projector] = {p.name: p for p in (*INLINE, *ASYNCHRONOUS)}
