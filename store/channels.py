"""The channels the service's processes tell each other on, with PostgreSQL's NOTIFY."""

# Events were committed (app/store/append_notices.py): the projection runners catch up at once
# rather than at their next poll.
EVENTS_APPENDED = "events_appended"
