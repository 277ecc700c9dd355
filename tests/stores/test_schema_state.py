"""`schema_state`, what `dockyard doctor` asks the metadata database, on every database."""

from __future__ import annotations

import datetime as dt

from dockyard.metadata.diagnosis import head_revision


def test_a_migrated_store_is_at_the_head_and_tells_its_clock(meta, run) -> None:
    before = dt.datetime.now(dt.UTC)
    state = run(meta.schema_state())
    after = dt.datetime.now(dt.UTC)
    assert state.revision == state.head == head_revision()
    # The database's clock, read during the call (the same machine's here).
    assert state.database_time.tzinfo is not None
    slack = dt.timedelta(seconds=1)
    assert before - slack <= state.database_time <= after + slack
