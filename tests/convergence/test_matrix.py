"""The fault matrix (tests/convergence/matrix.py): one test per operation × step × fault kind.

The steps are discovered when the tests are collected, by a clean run of each operation counted at the servers,
so a change to what an operation does changes its cells. A cell that reveals a defect is expected to fail
(`KNOWN_DEFECTS`, strict: once the defect is fixed the cell passes and the mark must go).
"""

from __future__ import annotations

import fnmatch

import pytest

from tests.convergence import matrix
from tests.convergence.operations import OPERATIONS
from tests.convergence.world import rig

AMBIGUOUS = (
    "D1: a storage write whose answer is lost after it applied (a POST is not retried by the SDK) is answered "
    "503 although the change committed; the change's own code never looks again (shared/storage.py Batch.commit "
    "raises the AzureError, shared/api.py maps it to 503)"
)
AMBIGUOUS_CREATE = (
    AMBIGUOUS + "; for create, worse: meetings.create then deactivates the provider meeting of the meeting it "
    "just committed (shared/meetings.py create, _deactivate_orphan), so the meeting can never be joined"
)
BINDING_INDEX = (
    "D2: a first join's binding reaches the invitee index only through a write after the claim batch "
    "(shared/joins.py _claim -> _index_binding) that no marker or pending entry covers: an instance dying or an "
    "answer lost in between leaves the invitee-index row pending and unbound for good"
)
FAILED_JOIN_BINDS = (
    "D3: a first join that fails after its claim answers 502/503/504, yet the invite stays accepted and bound "
    "(the claim batch commits the binding before the provider call; shared/joins.py _claim, _release deletes "
    "the claim row only); the contract binds at the first successful join"
)
ORPHAN = (
    "D4: a create whose instance dies (or whose provider call times out) after the provider created the meeting "
    "leaves that provider meeting ACTIVE with nothing recording it (shared/meetings.py create: no pending entry "
    "before create_meeting; _deactivate_orphan runs only for a storage failure it sees)"
)
LOST_STATUS_FOLLOW_UP = (
    "D5: a webhook that changes a meeting's status loses the invitees' list follow-up when its enqueue fails: "
    "Batch.commit swallows the after-commit failure, the delivery is settled, and set_activity wrote no pending "
    "entry (shared/meetings.py set_activity, shared/events/apply.py); the `x` marker stays until another session "
    "event for the meeting"
)

# (operation, step label, fault kind) patterns (fnmatch) -> the defect the cell reveals.
KNOWN_DEFECTS: list[tuple[str, str, str, str]] = [
    ("create*", "table batch Meetings[*index*meeting*]#1", "drop", AMBIGUOUS_CREATE),
    ("invite", "table batch Meetings[invite,marker,meeting,outbox]#1", "drop", AMBIGUOUS),
    ("role change", "table batch Meetings[invite,marker,meeting,outbox,participant]#1", "drop", AMBIGUOUS),
    ("revoke", "table batch Meetings[invite,marker,outbox,participant]#1", "drop", AMBIGUOUS),
    ("decline", "table batch Meetings[invite,marker,participant]#1", "drop", AMBIGUOUS),
    ("cancel", "table batch Meetings[index,marker,meeting,outbox]#1", "drop", AMBIGUOUS),
    ("narrow access", "table batch Meetings[index,marker,meeting]#1", "drop", AMBIGUOUS),
    ("first join", "table batch Meetings[participant]#1", "drop", AMBIGUOUS),
    ("guest join", "table batch Meetings[participant]#2", "drop", AMBIGUOUS),
    ("close account", "table POST ClosedAccounts#1", "drop", AMBIGUOUS),
    ("first join", "table batch Meetings[invite,participant]#1", "drop", AMBIGUOUS + "; and " + BINDING_INDEX),
    ("first join", "table batch Meetings[invite,participant]#1", "kill", BINDING_INDEX),
    ("first join", "provider POST /meetings/{id}/participants#1", "[45]xx", FAILED_JOIN_BINDS),
    ("first join", "provider POST /meetings/{id}/participants#1", "timeout", FAILED_JOIN_BINDS),
    ("first join", "table batch Meetings[participant]#1", "503", FAILED_JOIN_BINDS),
    ("create*", "provider POST /meetings#1", "timeout", ORPHAN),
    ("create*", "provider POST /meetings#1", "kill", ORPHAN),
    ("create*", "table POST ProviderMeetings#1", "kill", ORPHAN),
    ("create*", "table PATCH Pending#1", "kill", ORPHAN),
    ("webhook apply", "queue put jobs#1", "503", LOST_STATUS_FOLLOW_UP),
]


def _matches(cell: matrix.Cell, pattern: tuple[str, str, str, str]) -> bool:
    operation, step, kind, _ = pattern
    return (
        fnmatch.fnmatchcase(cell.operation.name, operation)
        and fnmatch.fnmatchcase(cell.step.label, step.replace("[", "[[]"))
        and fnmatch.fnmatchcase(cell.kind, kind)
    )


def _known(cell: matrix.Cell) -> str | None:
    return next((pattern[3] for pattern in KNOWN_DEFECTS if _matches(cell, pattern)), None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" not in metafunc.fixturenames:
        return
    cells, _ = matrix.cells(rig())
    params = []
    for cell in cells:
        reason = _known(cell)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(cell, id=cell.id, marks=marks))
    metafunc.parametrize("cell", params)


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest, convergence_rig) -> dict[str, list[str]]:
    """Every selected cell's problems, run in parallel once (the first cell's test waits for all of them)."""
    selected = [
        item.callspec.params["cell"]
        for item in request.session.items
        if hasattr(item, "callspec") and "cell" in item.callspec.params
    ]
    return matrix.run_all(convergence_rig, selected)


def test_cell(cell: matrix.Cell, results: dict[str, list[str]]) -> None:
    problems = results[cell.id]
    assert not problems, "\n".join(problems)


def test_every_operation_has_steps_and_every_known_defect_a_cell(convergence_rig) -> None:
    cells, steps = matrix.cells(convergence_rig)
    assert set(steps) == {operation.name for operation in OPERATIONS}
    assert all(steps.values()), steps
    for pattern in KNOWN_DEFECTS:
        assert any(_matches(cell, pattern) for cell in cells), f"no cell matches {pattern[:3]}: stale"
