from azure.data.tables import TableServiceClient


def test_proxy_forwards_to_azurite_and_counts_each_request(storage, prefix):
    storage.reset_counts()
    service = TableServiceClient.from_connection_string(storage.connection_string)
    table = service.create_table(f"{prefix}probe")
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "value": 7})
    assert table.get_entity("p", "r")["value"] == 7
    counts = storage.tables.snapshot()
    assert storage.tables.total() == 3
    assert counts[("POST", "/devstoreaccount1/Tables")] == 1
    assert storage.queues.total() == 0
