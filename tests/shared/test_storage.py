"""Table Storage limits enforced before a request leaves (Azurite does not enforce them all)."""

import pytest
from azure.data.tables import EdmType, EntityProperty

from shared import problems
from shared.storage import Storage, attempts, check_entity
from tests import support


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
    assert storage.tables.total() == 0
    table.create_entity({"PartitionKey": "p", "RowKey": "ok", "blob": EntityProperty(b"x" * 65536, EdmType.BINARY)})
    assert len(table.get_entity("p", "ok")["blob"]) == 65536


def test_tables_are_created_once_per_process(storage, storage_of):
    storage_of.table("Once")
    storage.reset_counts()
    storage_of.table("Once").create_entity({"PartitionKey": "p", "RowKey": "r"})
    assert storage.tables.total() == 1


def test_attempts_are_bounded():
    assert list(attempts(3)) == [0, 1, 2]
