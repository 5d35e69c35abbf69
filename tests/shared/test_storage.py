"""Table Storage limits enforced before a request leaves (Azurite does not enforce them all)."""

import re

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import EdmType, EntityProperty

from dev import azurite
from shared import problems
from shared.storage import (
    COMMIT_ID,
    MAX_BATCH_OPERATIONS,
    WRITE_ATTEMPTS,
    CommitUnknown,
    Stale,
    Storage,
    attempts,
    check_entity,
    retry,
)
from tests import support
from tests.hostile.tools import LossyProxy


@pytest.fixture
def storage_of(storage, prefix):
    return Storage(support.load(AzureWebJobsStorage=storage.connection_string, TABLE_PREFIX=prefix))


def test_entity_limits():
    check_entity({"PartitionKey": "p", "RowKey": "r", "text": "x" * 32768})
    with pytest.raises(problems.PayloadTooLarge):
        check_entity({"PartitionKey": "p", "RowKey": "r", "text": "x" * 32769})
    with pytest.raises(problems.PayloadTooLarge):
        check_entity({"PartitionKey": "p", "RowKey": "r", **{f"p{i}": i for i in range(253)}})
    with pytest.raises(problems.PayloadTooLarge):
        check_entity({"PartitionKey": "p", "RowKey": "r", **{f"s{i}": "x" * 30000 for i in range(18)}})
    for key in ("a/b", "a#b", "a?b", "a\\b", "a\nb", "x" * 1025):
        with pytest.raises(ValueError, match="key"):
            check_entity({"PartitionKey": key, "RowKey": "r"})


def test_oversized_writes_are_refused_before_they_reach_storage(storage, storage_of):
    table = storage_of.table("Limits")
    storage.reset_counts()
    with pytest.raises(problems.PayloadTooLarge):
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "blob": EntityProperty(b"x" * 65537, EdmType.BINARY)})
    with pytest.raises(problems.PayloadTooLarge):
        table.submit_transaction(
            [("create", {"PartitionKey": "p", "RowKey": f"r{i}", "text": "x" * 30000}) for i in range(2)]
            + [("create", {"PartitionKey": "p", "RowKey": "big", "text": "y" * 40000})]
        )
    # Only this test's table and batches: apps of other tests may be at work on the same Azurite.
    assert sum(n for (_, path), n in storage.tables.snapshot().items() if "Limits" in path or "$batch" in path) == 0
    table.create_entity({"PartitionKey": "p", "RowKey": "ok", "blob": EntityProperty(b"x" * 65536, EdmType.BINARY)})
    assert len(table.get_entity("p", "ok")["blob"]) == 65536


def test_tables_are_created_once_per_process(storage, storage_of):
    storage_of.table("Once")
    storage.reset_counts()
    storage_of.table("Once").create_entity({"PartitionKey": "p", "RowKey": "r"})
    assert storage.tables.total() == 1


def test_attempts_are_bounded():
    assert list(attempts(3)) == [0, 1, 2]


# The unit of work ------------------------------------------------------------------------------------------


def row(key: str, **values) -> dict:
    return {"PartitionKey": "p", "RowKey": key, **values}


def fail(error: Exception):
    raise error


def test_a_batch_commits_all_of_its_rows_or_none(storage_of):
    table = storage_of.table("Units")
    table.create_entity(row("c"))
    read = table.create_entity(row("b", n=1))
    table.update_entity(row("b", n=2))  # changed since it was read
    batch = storage_of.batch("Units", "p")
    batch.create(row("a"))
    batch.update(row("b", n=3), read["etag"])
    with pytest.raises(Stale):
        batch.commit()
    assert [(entity["RowKey"], entity.get("n")) for entity in table.list_entities()] == [("b", 2), ("c", None)]
    batch = storage_of.batch("Units", "p")
    batch.create(row("a"))
    batch.update(row("b", n=3), table.get_entity("p", "b").metadata["etag"])
    batch.delete("c")
    assert len(batch.commit()) == 3
    assert {entity["RowKey"]: entity.get("n") for entity in table.list_entities()} == {"a": None, "b": 3}


@pytest.mark.parametrize("conflict", ["create-existing", "update-changed", "delete-changed", "delete-missing"])
def test_a_row_changed_or_gone_since_read_makes_the_batch_stale(storage_of, conflict):
    table = storage_of.table("Stale")
    read = table.create_entity(row("x"))
    batch = storage_of.batch("Stale", "p")
    batch.create(row("y"))
    if conflict == "create-existing":
        batch.create(row("x"))
    elif conflict == "update-changed":
        table.update_entity(row("x", n=1))
        batch.update(row("x", n=2), read["etag"], merge=True)
    elif conflict == "delete-changed":
        table.update_entity(row("x", n=1))
        batch.delete("x", read["etag"])
    else:
        table.delete_entity("p", "x")
        batch.delete("x")  # gone, with or without an ETag
    with pytest.raises(Stale):
        batch.commit()
    assert "y" not in {entity["RowKey"] for entity in table.list_entities()}


def test_a_step_before_the_commit_that_fails_commits_nothing(storage, storage_of):
    storage_of.table("Before")
    batch = storage_of.batch("Before", "p")
    batch.create(row("a"))
    batch.before_commit(lambda: fail(RuntimeError("the pending entry could not be written")))
    storage.reset_counts()
    with pytest.raises(RuntimeError):
        batch.commit()
    assert storage.tables.total() == 0
    assert list(storage_of.table("Before").list_entities()) == []


def test_a_follow_up_that_fails_after_the_commit_never_undoes_it(storage_of, caplog):
    ran = []
    batch = storage_of.batch("After", "p")
    batch.create(row("a"))
    batch.after_commit(lambda: 1 / 0)
    batch.after_commit(lambda: ran.append("second"))
    assert len(batch.commit()) == 1
    assert ran == ["second"]
    assert "ZeroDivisionError" in caplog.text
    assert [entity["RowKey"] for entity in storage_of.table("After").list_entities()] == ["a"]


def test_storage_failing_is_not_a_conflict(storage, storage_of):
    storage_of.table("Down")
    batch = storage_of.batch("Down", "p")
    batch.create(row("a"))
    storage.tables.fail("POST", re.escape(storage_of.table_name("Down")), status=503, times=3)
    try:
        with pytest.raises(AzureError) as failure:
            batch.commit()
    finally:
        storage.tables.clear_faults()
    assert not isinstance(failure.value, Stale)


def test_a_batch_writes_one_partition_and_each_row_once(storage_of):
    batch = storage_of.batch("Shape", "p")
    batch.create(row("a"))
    with pytest.raises(ValueError, match="partition"):
        batch.create({"PartitionKey": "q", "RowKey": "b"})
    with pytest.raises(ValueError, match="already written"):
        batch.upsert(row("a"))
    assert "a" in batch and len(batch) == 1 and batch.has_prefix("a") and not batch.has_prefix("b")


def test_retry_goes_round_on_stale_and_answers_409_after_its_rounds():
    rounds = []

    def contended():
        rounds.append(1)
        raise Stale("changed")

    with pytest.raises(problems.Conflict) as failure:
        retry(contended, "The meeting is changing concurrently; retry.")
    assert failure.value.status == 409 and len(rounds) == WRITE_ATTEMPTS
    outcomes = iter([Stale("changed"), Stale("changed"), "done"])

    def settles():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry(settles) == "done"
    with pytest.raises(problems.NotFound):
        retry(lambda: fail(problems.NotFound("gone")))  # anything but Stale is not retried


# Answers lost after a commit ------------------------------------------------------------------------------


@pytest.fixture
def lossy(storage, prefix):
    """(proxy, storage): a `Storage` whose table requests pass through a proxy that can lose their answers."""
    proxy = LossyProxy(storage.server.table_port).start()
    connection = azurite.connection_string(storage.server.blob_port, storage.queues.port, proxy.port)
    yield proxy, Storage(support.load(AzureWebJobsStorage=connection, TABLE_PREFIX=prefix))
    proxy.stop()


def test_a_batch_whose_answer_is_lost_after_it_committed_goes_on_as_committed(lossy):
    proxy, lossy_storage = lossy
    table = lossy_storage.table("Lost")
    read = table.create_entity(row("b", n=1))
    table.create_entity(row("d"))
    ran = []
    batch = lossy_storage.batch("Lost", "p")
    batch.delete("d")  # a deletion is never the anchor: the first row written is
    batch.update(row("b", n=2), read["etag"], merge=True)
    batch.create(row("a"))
    batch.after_commit(lambda: ran.append("after"))
    proxy.lose(r"\$batch")
    results = batch.commit()
    assert ran == ["after"]
    stored = table.get_entity("p", "b")
    assert stored["n"] == 2 and stored[COMMIT_ID]
    assert [bool(result) for result in results] == [False, True, False]  # only the anchor's metadata is known
    assert results[1]["etag"] == stored.metadata["etag"]
    assert sorted(entity["RowKey"] for entity in table.list_entities()) == ["a", "b"]


def test_a_batch_whose_answer_is_lost_and_that_did_not_commit_fails(lossy):
    proxy, lossy_storage = lossy
    table = lossy_storage.table("Refused")
    table.create_entity(row("x", n=1))
    ran = []
    batch = lossy_storage.batch("Refused", "p")
    batch.upsert(row("y", n=1))
    batch.create(row("x"))  # refused by the service: nothing commits, and its answer is lost too
    batch.after_commit(lambda: ran.append("after"))
    proxy.lose(r"\$batch")
    with pytest.raises(AzureError) as failure:
        batch.commit()
    assert not isinstance(failure.value, (Stale, CommitUnknown))
    assert ran == []
    assert [entity["RowKey"] for entity in table.list_entities()] == ["x"]


def test_a_lost_answer_that_cannot_be_read_back_is_unknown(lossy):
    proxy, lossy_storage = lossy
    lossy_storage.table("Unknown")
    batch = lossy_storage.batch("Unknown", "p")
    batch.create(row("a"))
    proxy.lose(r"\$batch")
    proxy.fail("GET", r"RowKey='a'", status=503, times=3)  # the read-back, with the SDK's retries
    with pytest.raises(CommitUnknown):
        batch.commit()
    deletions = lossy_storage.batch("Unknown", "p")
    deletions.delete("a")
    proxy.lose(r"\$batch")
    with pytest.raises(CommitUnknown):  # a transaction of deletions has no row to carry its id
        deletions.commit()


def test_a_batch_resent_after_a_gateway_lost_its_answer_is_not_stale(storage, lossy):
    """The SDK resends a POST answered 504; the resend is refused as a conflict with the first attempt."""
    proxy, lossy_storage = lossy
    table = lossy_storage.table("Resent")
    read = table.create_entity(row("x", n=1))
    batch = lossy_storage.batch("Resent", "p")
    batch.update(row("x", n=2), read["etag"])
    batch.create(row("y"))
    proxy.lose(r"\$batch", status=504)
    assert batch.commit()[0]["etag"] == table.get_entity("p", "x").metadata["etag"]
    assert proxy.counts[("POST", f"/{azurite.ACCOUNT}/$batch")] == 2
    again = lossy_storage.batch("Resent", "p")
    again.update(row("x", n=3), read["etag"])  # truly stale: the read-back finds another commit's row
    proxy.lose(r"\$batch", status=504)
    with pytest.raises(Stale):
        again.commit()
    assert table.get_entity("p", "x")["n"] == 2


# Touches beyond the operation limit ---------------------------------------------------------------------


def test_touches_beyond_the_limit_are_written_after_the_commit_and_before_its_follow_ups(storage_of):
    table = storage_of.table("Touches")
    read = {f"t{n:03}": table.create_entity(row(f"t{n:03}"))["etag"] for n in range(60)}
    batch = storage_of.batch("Touches", "p")
    for n in range(60):
        batch.create(row(f"c{n:03}"))
    for key, etag in read.items():
        batch.touch(row(key, touched=True), etag)
    assert len(batch) == 120
    seen = []
    batch.after_commit(lambda: seen.append(sorted(e["RowKey"] for e in table.list_entities() if e.get("touched"))))
    batch.commit()
    assert seen == [sorted(read)]  # every touch landed before the follow-up ran
    assert len(list(table.list_entities())) == 120


def test_touches_in_the_transaction_are_guarded_by_what_was_read(storage_of):
    table = storage_of.table("Guarded")
    read = table.create_entity(row("t"))
    table.update_entity(row("t", n=1))  # a join changed it since
    batch = storage_of.batch("Guarded", "p")
    batch.create(row("c"))
    batch.touch(row("t", touched=True), read["etag"])
    with pytest.raises(Stale):
        batch.commit()


def test_touches_that_fail_after_the_commit_leave_the_follow_ups_to_the_sweep(storage, storage_of, caplog):
    table = storage_of.table("Spill")
    etags = [table.create_entity(row(f"t{n:03}"))["etag"] for n in range(MAX_BATCH_OPERATIONS + 1)]
    batch = storage_of.batch("Spill", "p")
    batch.create(row("c"))
    for n, etag in enumerate(etags):
        batch.touch(row(f"t{n:03}", touched=True), etag)
    ran = []
    batch.after_commit(lambda: ran.append("after"))
    storage.tables.fail("POST", r"t100", status=503, times=3)  # the touches after the commit (t099 and t100)
    try:
        batch.commit()  # committed: no exception
    finally:
        storage.tables.clear_faults()
    assert ran == []
    assert "touches after a commit failed" in caplog.text
    touched = {entity["RowKey"] for entity in table.list_entities() if entity.get("touched")}
    assert "c" in {entity["RowKey"] for entity in table.list_entities()}
    assert len(touched) == MAX_BATCH_OPERATIONS - 1 and "t100" not in touched
