"""The peer: the `eventsourcing` library's PostgreSQL application recorder appending the same
TASK_CREATED payload, one event to a new aggregate per call, from as many threads and pooled
connections as the benchmark's concurrency. Prints its commits per second.

usage: python -m bench.peer DATABASE_URL CONCURRENCY SECONDS"""

from __future__ import annotations

import sys
import threading
import time
import uuid

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from sqlalchemy.engine import make_url

from bench.appends import sample_payload

TOPIC = "tasks:TaskCreated"


def main() -> None:
    database_url, concurrency, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    url = make_url(database_url)
    datastore = PostgresDatastore(
        dbname=url.database or "postgres",
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        pool_size=concurrency,
    )
    recorder = PostgresApplicationRecorder(datastore, events_table_name="peer_stored_events")
    recorder.create_table()
    payload = sample_payload()
    counts = [0] * concurrency
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        while time.monotonic() < deadline:
            recorder.insert_events([StoredEvent(uuid.uuid4(), 1, TOPIC, payload)])
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(sum(counts) / (time.monotonic() - started))
    datastore.close()


if __name__ == "__main__":
    main()
