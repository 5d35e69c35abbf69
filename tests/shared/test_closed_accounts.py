"""The closed-account gate: a tombstone refuses the caller on every instance by the time close returns."""

from datetime import UTC, datetime, timedelta

import pytest

from shared import problems, schema, times
from shared.closed_accounts import MAX_SNAPSHOT_AGE, ClosedAccounts
from shared.storage import Storage
from tests import support


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def instances(storage, prefix):
    def instance(now=times.now):
        settings = support.load(AzureWebJobsStorage=storage.connection_string, TABLE_PREFIX=prefix)
        clock = Clock()
        return ClosedAccounts(Storage(settings), clock=clock, sleep=clock.sleep, now=now, background=False), clock

    return instance


def test_close_refuses_on_every_instance_once_it_returns(instances):
    (first, first_clock), (second, second_clock) = instances(), instances()
    second.check("alice")  # the second instance has a snapshot from before the close
    first.wait_until_everywhere(first.close("alice"))
    assert first_clock.slept and first_clock.slept[0] >= MAX_SNAPSHOT_AGE
    with pytest.raises(problems.Forbidden):
        first.check("alice")
    # By the time close returned, the second instance's snapshot is too old to use: it refreshes.
    second_clock.now += MAX_SNAPSHOT_AGE + 0.01
    with pytest.raises(problems.Forbidden):
        second.check("alice")
    second.check("bob")
    first.close("alice")  # closing twice is harmless
    with pytest.raises(problems.Forbidden):
        first.check("alice")


def test_committed_reads_storage_where_a_fresh_snapshot_predates_the_close(instances):
    (gate, _), (other, _) = instances(), instances()
    other.check("erin")  # a fresh snapshot, from before the close
    gate.close("erin")
    assert not other.is_closed("erin")  # still young enough to answer from
    assert other.committed("erin")
    assert not other.committed("frank")


def test_a_fresh_snapshot_costs_no_request(instances, storage):
    gate, clock = instances()
    gate.check("carol")
    storage.reset_counts()
    clock.now += MAX_SNAPSHOT_AGE / 2
    gate.check("carol")
    assert storage.tables.total() == 0


def test_another_instance_learns_of_every_closure_incrementally(instances):
    gate, _ = instances()
    for user in ("u1", "u2", "u3"):
        gate.wait_until_everywhere(gate.close(user))
    other, _ = instances()
    other.refresh()
    assert all(other.is_closed(user) for user in ("u1", "u2", "u3"))
    gate.close("u4")
    other.refresh()  # now only tombstones since the newest one seen (with an overlap)
    assert other.is_closed("u4") and other.is_closed("u1")


def test_no_snapshot_and_no_storage_is_503(storage, prefix):
    settings = support.load(AzureWebJobsStorage=storage.connection_string, TABLE_PREFIX=prefix)
    clock = Clock()
    gate = ClosedAccounts(Storage(settings), clock=clock, sleep=clock.sleep, background=False)
    storage.tables.fail("GET", schema.CLOSED_ACCOUNTS, status=503, times=10)
    storage.tables.fail("POST", "Tables", status=503, times=10)
    try:
        with pytest.raises(problems.Unavailable):
            gate.check("dave")
    finally:
        storage.tables.clear_faults()


def test_an_instance_that_could_not_refresh_for_a_while_still_learns_of_every_closure(instances):
    wall = {"now": datetime(2026, 12, 7, 10, 50, tzinfo=UTC)}
    behind, behind_clock = instances(now=lambda: wall["now"])
    closing, _ = instances(now=lambda: wall["now"])
    behind.check("alice")  # a snapshot at 10:50
    wall["now"] = datetime(2026, 12, 7, 10, 55, tzinfo=UTC)
    closing.close("alice")  # a tombstone in the partition of 10:00
    # Storage was out of this instance's reach until 11:06 (its refreshes failed); now it is back.
    wall["now"] = datetime(2026, 12, 7, 11, 6, tzinfo=UTC)
    behind_clock.now += timedelta(minutes=16).total_seconds()
    with pytest.raises(problems.Forbidden):
        behind.check("alice")
