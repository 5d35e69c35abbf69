from azure.data.tables import TableServiceClient


def test_proxy_forwards_to_azurite_and_counts_each_request(storage, prefix):
    storage.reset_counts()
    service = TableServiceClient.from_connection_string(storage.connection_string)
    table = service.create_table(f"{prefix}probe")
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "value": 7})
    assert table.get_entity("p", "r")["value"] == 7
    # The proxy is shared by the session: count only this test's requests.
    mine = {
        key: count for key, count in storage.tables.snapshot().items() if prefix in key[1] or key[1].endswith("/Tables")
    }
    assert sum(mine.values()) == 3
    assert mine[("POST", "/devstoreaccount1/Tables")] == 1
