"""The fault matrix: every operation × every step it takes × every fault kind that can matter there.

The steps come from a clean run of each operation, counted at the servers (`faults.Injector`), so the matrix
follows the code. A fault kind is a cell only where it can change what happens:

- at a read (a storage query or GET, a provider GET): refusals only (`503`; `4xx`, `5xx`). A read whose answer
  is lost is simply retried by the client, as if nothing happened, and a process killed right after a read is
  in the same state as one killed right after the write before it, which is a cell of its own;
- at a write: every kind of its server;
- a run of identical reads in a row (a loop over shards) is one step for faults: its first.

A cell builds its scene, aims the fault at the step on an instance that can die, runs the operation, stops the
fault, and checks:

1. the answer reflects what committed: 2xx and the change is in our tables, or 502/503/504 and it is not
   (a killed instance answers nothing; anything else, a 500 say, is a failure);
2. after the background work has run on a fresh instance (`World.converge`), the invariant checker finds
   nothing, and neither do the operation's own checks (`Operation.verify`).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tests.convergence.faults import KINDS, Gate, Killed, Step
from tests.convergence.operations import OPERATIONS, Operation
from tests.convergence.world import Answer, Rig, World

NOT_REACHED = "was never reached"
SIZE: list[str] = []  # the matrix's size, once discovered (printed at the end of the run)

_READS = ("table query ", "table GET ", "provider GET ")


def kinds(step: Step) -> tuple[str, ...]:
    if _read(step):
        return tuple(kind for kind in KINDS[step.server] if kind in ("503", "4xx", "5xx"))
    return KINDS[step.server]


@dataclass(frozen=True)
class Cell:
    operation: Operation
    step: Step
    kind: str

    @property
    def id(self) -> str:
        return f"{self.operation.name} | {self.step.label} | {self.kind}"


def discover(rig: Rig, operation: Operation) -> list[Step]:
    """The steps of a clean run of the operation, as they reached the servers."""
    world = World(rig)
    try:
        scene = operation.setup(world, world.instance(mail=False, direct=True))
        ctx = world.instance(warm=True)
        steps = rig.injector.record(world.prefix)
        try:
            result = operation.act(world, ctx, scene)
        finally:
            rig.injector.stop()
        if result is not None and not result.ok:
            raise AssertionError(f"{operation.name}: the clean run answered {result}")
        world.converge()
        problems = world.divergences(views_too=False)
        if operation.committed(world, scene) is False or problems:
            raise AssertionError(f"{operation.name}: the clean run did not converge: {problems}")
        return list(steps)
    finally:
        world.cleanup()


@functools.cache
def cells(rig: Rig) -> tuple[tuple[Cell, ...], dict[str, int]]:
    """Every cell, and the number of steps of each operation."""
    found: list[Cell] = []
    steps_of: dict[str, int] = {}
    discovered = pool(rig).map(_discover_in_worker, [operation.name for operation in OPERATIONS])
    for operation, steps in zip(OPERATIONS, discovered, strict=True):
        steps_of[operation.name] = len(steps)
        previous = None
        for step in steps:
            # A run of identical reads, one right after the other (a loop over the 16 delivery shards, say),
            # is one cell: a refusal from its k-th read on leaves the state and the code path of one from its
            # first, since the reads before it had no effect.
            repeated = previous is not None and previous.signature == step.signature and _read(step)
            previous = step
            if not repeated:
                found += [Cell(operation, step, kind) for kind in kinds(step)]
    fault_kinds = sorted({cell.kind for cell in found})
    SIZE.append(
        f"fault matrix: {len(steps_of)} operations × {sum(steps_of.values())} steps × {len(fault_kinds)} fault kinds "
        f"({', '.join(fault_kinds)}: those that can matter at each step) = {len(found)} cells"
    )
    return tuple(found), steps_of


def _read(step: Step) -> bool:
    return step.signature.startswith(_READS)


def run(rig: Rig, cell: Cell) -> list[str]:
    """Run one cell; what went wrong (nothing, when the cell passes)."""
    operation = cell.operation
    world = World(rig)
    try:
        scene = operation.setup(world, world.instance(mail=False, direct=True))
        gate = Gate()
        ctx = world.instance(gate, warm=True)
        aim = rig.injector.aim(world.prefix, cell.step, cell.kind, kill=gate.trip)
        result: Answer | None
        try:
            result = operation.act(world, ctx, scene)
        except Killed:
            result = None  # background work dies with its instance; its message stays unacknowledged
        except Exception:
            result = None  # a background function failed: its queue or its pending entry retries it
        finally:
            aim = rig.injector.stop()
        rig.injector.settle(aim)
        problems: list[str] = []
        if aim is None or aim.fired_at is None:
            problems.append(f"the step {cell.step.label} {NOT_REACHED}")
        if not operation.background:
            problems += _answer_reflects_commit(result, operation.committed(world, scene))
        world.converge()
        problems += world.divergences(views_too=operation.name.startswith("close"))
        problems += operation.verify(world, scene, result)
        return problems
    finally:
        world.cleanup()


def _answer_reflects_commit(result: Answer | None, committed: bool | None) -> list[str]:
    if result is None or result.status is None:
        return []  # the instance died: nobody got an answer
    if result.ok:
        return [] if committed is not False else [f"answered {result.status}, yet the change did not commit"]
    if result.status in (502, 503, 504):
        return [] if committed is not True else [f"answered {result.status} ({result.slug}), yet the change committed"]
    return [f"answered {result}: only 2xx, or 502/503/504 with nothing committed, may answer a fault"]


# Running the cells in parallel -----------------------------------------------------------------------------
#
# A cell is mostly waiting on servers, and the servers (proxies, stand-ins) are Python threads of the process
# that runs it: cells run in worker processes, each with a rig of its own on the one Azurite.

_worker_rig: Rig | None = None


def _start_worker(azurite_ports: tuple[int, int, int]) -> None:
    global _worker_rig
    logging.getLogger().setLevel(logging.ERROR)  # the app logs every retried failure: the cells say what matters
    _worker_rig = Rig.start(azurite_ports)


def _operation(name: str) -> Operation:
    return next(operation for operation in OPERATIONS if operation.name == name)


def _discover_in_worker(name: str) -> list[Step]:
    assert _worker_rig is not None
    return discover(_worker_rig, _operation(name))


def _run_in_worker(spec: tuple[str, Step, str]) -> tuple[str, list[str]]:
    name, step, kind = spec
    cell = Cell(_operation(name), step, kind)
    assert _worker_rig is not None
    for _ in range(3):
        try:
            problems = run(_worker_rig, cell)
        except Exception:  # the cell's own code failed (a scene, a check): that cell fails, not every cell
            problems = [f"the cell raised:\n{traceback.format_exc()}"]
        # A fault aimed at a step a run did not take (a provider call timed out on a slow machine, say, and
        # the run went another way) tested nothing: run the cell again.
        if not any(NOT_REACHED in problem for problem in problems):
            break
    return cell.id, problems


def workers() -> int:
    # One more than the cores: a cell also waits (a late provider answer, Azurite), and another fills the gap.
    return int(os.environ.get("CONVERGENCE_WORKERS") or (os.cpu_count() or 1) + 1)


_pool: ProcessPoolExecutor | None = None


def pool(rig: Rig) -> ProcessPoolExecutor:
    """The worker processes, started once: they discover the steps (when the tests are collected), then run
    the cells."""
    global _pool
    if _pool is None:
        context = multiprocessing.get_context("spawn")
        _pool = ProcessPoolExecutor(workers(), context, initializer=_start_worker, initargs=(rig.azurite_ports,))
    return _pool


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


def run_all(rig: Rig, selected: list[Cell]) -> dict[str, list[str]]:
    """Each cell's problems, the cells shared out among worker processes."""
    specs = [(cell.operation.name, cell.step, cell.kind) for cell in selected]
    return dict(pool(rig).map(_run_in_worker, specs))
