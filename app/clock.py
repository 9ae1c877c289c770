"""The service's one clock."""

from datetime import UTC, datetime


def now() -> datetime:
    """The current time in UTC, to the millisecond as timestamps are shown."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
