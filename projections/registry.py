"""Every projection, by name, and everything the runners follow."""

from projections.log_digest import LOG_DIGEST
from projections.projector import Projector
from projections.rollups import RollupProjector
from projections.runner import Follower
from projections.task_view import TaskViewProjector

TASK_VIEW = TaskViewProjector()
ROLLUPS = RollupProjector()

# Projected inside each command's transaction; never by the runner.
INLINE: tuple[Projector, ...] = (TASK_VIEW,)
# Projected by the runner, behind the log.
ASYNCHRONOUS: tuple[Projector, ...] = (ROLLUPS,)
PROJECTORS: dict[str, Projector] = {p.name: p for p in (*INLINE, *ASYNCHRONOUS)}
# What the runners follow: every asynchronous projection, and the tenants' log digests, whose
# checkpoint is the horizon `tasks-api audit verify` checks behind.
FOLLOWED: tuple[Follower, ...] = (*ASYNCHRONOUS, LOG_DIGEST)
