"""Rate limit counts when no Redis is configured: requests accepted per counter and second, and
the function that takes one from a counter in one round trip.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The first key of the two-key advisory locks that queue takes from one counter; the
# projection runners lock with one-key locks, a key space of its own.
COUNTER_LOCKS = 4004


# Taking one request from a counter, in one round trip (replaced by a lease in 0012).
TAKE_RATE_LIMIT = f"""
    CREATE FUNCTION take_rate_limit(
        counter_key text, quota integer, window_seconds integer, at double precision
    ) RETURNS TABLE (
        accepted boolean,
        taken_at double precision,
        counted_seconds bigint[],
        counted_requests integer[]
    )
    LANGUAGE plpgsql AS $$
    DECLARE
        this_second bigint;
        used bigint;
    BEGIN
        -- A count lost to a crash costs less than an fsync on every request.
        PERFORM set_config('synchronous_commit', 'off', true);
        -- One clock for every server: the database's, unless a test sets the time.
        taken_at := coalesce(at, extract(epoch FROM clock_timestamp()));
        this_second := floor(taken_at);

        -- Takes from one counter queue here, so that each counts every one before it.
        PERFORM pg_advisory_xact_lock({COUNTER_LOCKS}, hashtext(counter_key));
        SELECT array_agg(c.second ORDER BY c.second),
               array_agg(c.requests ORDER BY c.second),
               coalesce(sum(c.requests), 0)
          INTO counted_seconds, counted_requests, used
          FROM rate_limit_counts c
         WHERE c.counter = counter_key AND c.second >= this_second - window_seconds;
        accepted := used < quota;
        IF accepted THEN
            INSERT INTO rate_limit_counts AS c (counter, second, requests)
            VALUES (counter_key, this_second, 1)
            ON CONFLICT (counter, second) DO UPDATE SET requests = c.requests + 1;
        END IF;

        -- Seconds no window reaches any more, of any counter (an idle tenant's, a
        -- passing address's). A window's length of margin keeps clear of takes a moment
        -- behind this one; SKIP LOCKED, of a sweep running beside it.
        DELETE FROM rate_limit_counts
         WHERE (counter, second) IN (
            SELECT c.counter, c.second FROM rate_limit_counts c
             WHERE c.second < this_second - 2 * window_seconds
             LIMIT 100
               FOR UPDATE SKIP LOCKED
         );
        RETURN NEXT;
    END
    $$
"""


def upgrade() -> None:
    # A row per counter and second, not per request: at most two windows' seconds of rows per
    # counter whatever its rate. The spare room lets a count be updated in place (HOT).
    op.execute("""
        CREATE TABLE rate_limit_counts (
            counter text NOT NULL,
            second bigint NOT NULL,
            requests integer NOT NULL,
            PRIMARY KEY (counter, second)
        ) WITH (fillfactor = 70)
    """)
    op.execute("CREATE INDEX rate_limit_counts_second ON rate_limit_counts (second)")
    op.execute(TAKE_RATE_LIMIT)


def downgrade() -> None:
    op.execute("DROP FUNCTION take_rate_limit(text, integer, integer, double precision)")
    op.execute("DROP TABLE rate_limit_counts")
