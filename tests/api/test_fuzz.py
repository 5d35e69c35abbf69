"""Schema fuzzing: schemathesis drives every operation of openapi.yaml against the running app.

No 500, no status the document does not list, and every response conforms to the document. Bounded in
examples (and derandomized, so a failure reproduces). Path parameters point at a real meeting of the
caller half of the time, so the fuzzer reaches past the 404s into the handlers.
"""

import itertools

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import support

schema = schemathesis.openapi.from_path(support.ROOT / "openapi.yaml")
TURNS = itertools.count()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case, fuzz_target):
    turn = next(TURNS)
    token = fuzz_target.tokens[0]
    if "meetingId" in (case.path_parameters or {}) and turn % 2:
        case.path_parameters["meetingId"] = fuzz_target.meeting_id
    elif case.operation.path == "/meetings":
        # Spread creates over several callers, so the per-caller limit leaves room for real work.
        token = fuzz_target.tokens[turn % len(fuzz_target.tokens)]
    if case.operation.path == "/me" and case.method == "DELETE":
        token = fuzz_target.app.user("leaver").token  # closing an account is for good: never a shared caller
    headers = {} if case.operation.path == "/webhooks/dyte" else {"Authorization": f"Bearer {token}"}
    case.call_and_validate(base_url=f"{fuzz_target.app.url}/api", headers=headers, checks=CHECKS)
