import pytest
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


def test_an_interceptor_fails_drops_or_follows_a_request(storage, prefix):
    from azure.core.exceptions import HttpResponseError, ServiceResponseError

    from dev.counting_proxy import Intercept

    service = TableServiceClient.from_connection_string(storage.connection_string, retry_total=0)
    table = service.create_table(f"{prefix}probe")
    seen, events = [], []

    def intercept(method, target, body):
        if prefix not in target and prefix not in (body or b"").decode():
            return None
        seen.append(method)
        if method == "GET":
            return Intercept(status=503)  # answered here, never forwarded
        if method == "POST":
            return Intercept(drop=True, then=lambda: events.append("then"))  # applied, then no answer
        return None

    storage.tables.interceptor = intercept
    try:
        with pytest.raises(HttpResponseError) as refused:
            table.get_entity("p", "r")
        assert refused.value.status_code == 503
        with pytest.raises(ServiceResponseError):
            table.create_entity({"PartitionKey": "p", "RowKey": "r"})
    finally:
        storage.tables.interceptor = None
    assert seen == ["GET", "POST"] and events == ["then"]
    assert table.get_entity("p", "r")["RowKey"] == "r"  # the dropped insert took effect
    with pytest.raises(ValueError, match="dropped"):
        Intercept(forward=False)
