"""`make bench` (`python -m bench`): latency, round trips, throughput and cold-start cost, on this machine.

Prints a table and writes everything to bench/results.json (gitignored). Exits 1 when an operation
exceeds its round-trip budget (docs/data-model.md) or the concurrent phase saw an error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import imports, workload
from dev import azurite
from dev.harness import ROOT, values

RESULTS = ROOT / "bench" / "results.json"
OPERATIONS = (
    "create",
    "create (key)",
    "create (replay)",
    "create (7 invitees)",
    "get",
    "list",
    "invite",
    "first join",
    "refused join",
    "rejoin",
    "webhook accept",
    "webhook repeat",
    "webhook apply",
    "status follow-up",
    "sessions page",
    "recordings page",
)
# docs/data-model.md, "What each operation costs": (storage requests, provider calls) at most; None: none stated.
BUDGETS: dict[str, tuple[int | None, int]] = {
    "create": (2, 1),  # ProviderMeetings insert, one batch (no invitees)
    "create (key)": (3, 1),  # with Idempotency-Key: the claim, ProviderMeetings insert, one batch
    "create (replay)": (2, 0),  # the same key again: the claim (conflict), the stored 201
    "create (7 invitees)": (None, 1),  # the capacity workload's meeting of eight: measured, no budget stated
    "get": (1, 0),
    "list": (2, 0),  # one per index partition per page: the owner index and the one verified address
    # The read, the pending entry, the batch; the follow-up inline: its read, what it writes (the invitee's
    # index row), the batch clearing the markers, the entry's deletion. Mail is off, no one has joined yet.
    "invite": (7, 0),
    "first join": (5, 1),  # it binds the invite: also the participation and the invitee index's binding
    "refused join": (1, 0),
    "rejoin": (2, 1),  # past the token-reuse window: the read, the token update; one refresh
    "webhook accept": (3, 0),  # 2 table requests and 1 queue put (fresh delivery)
    "webhook repeat": (2, 0),  # the same body once applied: the refused retention entry, the read; no put
    "webhook apply": (5, 0),  # per event, whatever its kind
    # The job a meeting's status change queues (the invitee's index row, retention once ended): measured only.
    "status follow-up": (None, 0),
    # The meeting check, the order rows, the rows they point at (20 a query), the participants.
    "sessions page": (4, 0),
    "recordings page": (3, 0),  # no participants
}
IMPORT_RATIO_BUDGET = 1.25  # importing function_app, next to its libraries alone, on the machine of the run


def summarize(samples: list[workload.Sample], bare_ms: float, budget: tuple[int | None, int]) -> dict[str, Any]:
    storage = [sample.tables + sample.queue_puts for sample in samples]
    provider = [sample.provider_calls for sample in samples]
    latency = workload.percentiles([sample.ms for sample in samples])
    storage_budget, provider_budget = budget
    return {
        "samples": len(samples),
        **latency,
        "ratioToBareRoundTrip": round(latency["medianMs"] / bare_ms, 1),
        "storage": {
            "mean": round(statistics.mean(storage), 2),
            "max": max(storage),
            "tablesMean": round(statistics.mean(sample.tables for sample in samples), 2),
            "queuePutsMean": round(statistics.mean(sample.queue_puts for sample in samples), 2),
            "budget": storage_budget,
        },
        "providerCalls": {"mean": round(statistics.mean(provider), 2), "max": max(provider), "budget": provider_budget},
        "withinBudget": (storage_budget is None or max(storage) <= storage_budget) and max(provider) <= provider_budget,
    }


def report(results: dict[str, Any]) -> str:
    m, cold, bare = results["machine"], results["importTime"], results["bareRoundTrip"]
    lines = [
        f"Machine: {m['cpus']} CPUs ({m['cpuModel']}), Python {m['python']}, {m['system']}, Azurite {m['azurite']}",
        "Load average (1, 5, 15 min) at the start {}, at the end {}".format(
            *(", ".join(f"{value:.1f}" for value in results["loadAverage"][when]) for when in ("start", "end"))
        ),
        f"Bare Azurite round trip ({bare['what']}): median {bare['direct']['medianMs']} ms direct, "
        f"{bare['proxied']['medianMs']} ms through the counting proxy",
        "",
        f"{'operation':<17}{'n':>5}{'median':>9}{'p95':>9}{'p99':>9}{'x bare':>8}"
        f"{'storage mean/max':>18}{'budget':>8}{'provider mean/max':>19}{'budget':>8}",
    ]
    for name, op in results["operations"].items():
        storage, provider = op["storage"], op["providerCalls"]
        budget = "-" if storage["budget"] is None else str(storage["budget"])
        lines.append(
            f"{name:<17}{op['samples']:>5}{op['medianMs']:>9.2f}{op['p95Ms']:>9.2f}{op['p99Ms']:>9.2f}"
            f"{op['ratioToBareRoundTrip']:>8.1f}{storage['mean']:>12.2f} / {storage['max']:<3}{budget:>8}"
            f"{provider['mean']:>13.2f} / {provider['max']:<3}{provider['budget']:>8}"
            + ("" if op["withinBudget"] else "  OVER BUDGET")
        )
    lines.append(
        "  webhook apply by event (median ms, storage mean/max): "
        + ", ".join(
            f"{event} {op['medianMs']:.0f}, {op['storageMean']:g}/{op['storageMax']}"
            for event, op in results["operations"]["webhook apply"]["byEvent"].items()
        )
    )
    load = results["concurrent"]
    lag = load["webhookLag"]
    lines += [
        "(latencies in ms, at the client; storage = table requests + queue puts, counted at the proxies)",
        "",
        f"Concurrent: {load['clients']} clients, {load['meetings']} meetings, {load['requests']} requests in "
        f"{load['seconds']} s = {load['throughputPerSecond']} requests/s, errors {load['errors']}",
        "  latency under load: "
        + ", ".join(f"{name} {op['medianMs']:.0f}/{op['p95Ms']:.0f}" for name, op in load["latency"].items())
        + " ms (median/p95)",
        f"  webhook lag (received -> applied): median {lag.get('medianMs')} ms, p95 {lag.get('p95Ms')} ms "
        f"({lag['applied']} of {lag['deliveries']} applied)",
        "  CPU seconds: " + ", ".join(f"{name} {seconds}" for name, seconds in load["cpuSeconds"].items()),
        "",
        f"Import time (median of {cold['runs']} fresh processes, -X importtime): function_app {cold['appMs']} ms, "
        f"its libraries alone {cold['librariesMs']} ms: ratio {cold['ratio']} (budget {IMPORT_RATIO_BUDGET}"
        + ("" if cold["ratio"] <= IMPORT_RATIO_BUDGET else ", OVER")
        + f"), our code adds {cold['ourCodeMs']} ms",
        "  deferred to first use: " + ", ".join(f"{name} {ms} ms" for name, ms in cold["deferredMs"].items()),
    ]
    otel = cold["opentelemetry"]
    if otel:
        lines.append(
            f"  azure-monitor-opentelemetry: import {otel['importMs']} ms on top of function_app, "
            f"configure_azure_monitor() {otel['configureMs']} ms (+{otel['addedToAppPercent']} % of function_app)"
        )
    else:
        lines.append("  azure-monitor-opentelemetry: not installed (pip install it into .venv to measure it)")
    return "\n".join(lines)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="sequential samples per operation (default 200)")
    parser.add_argument("--meetings", type=int, default=150, help="meetings in the concurrent phase (default 150)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh processes per import figure (default 7)")
    args = parser.parse_args(argv)
    if min(args.samples, args.meetings * 5) < 5 or min(args.clients, args.import_runs) < 1:
        parser.error("percentiles need at least 5 samples and 1 meeting; at least 1 client and 1 import run")
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything on the way out, as on Ctrl-C

    results: dict[str, Any] = {
        "machine": workload.machine(),
        "settings": vars(args),
        "loadAverage": {"start": os.getloadavg()},
    }
    print("measuring import time ...", flush=True)
    # Settings complete and storage on a closed port: importing function_app reads settings, connects nowhere.
    closed = azurite.connection_string(1, 1, 1)
    environment = {**os.environ, **values(AzureWebJobsStorage=closed), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        package = imports.package(ROOT, Path(scratch))
        results["importTime"] = imports.measure(environment, args.import_runs, ROOT / "requirements.txt", package)
    print("starting the stack ...", flush=True)
    try:
        with workload.stack() as stack:
            try:
                print(f"{args.samples} samples of each operation, one at a time ...", flush=True)
                sequential = workload.per_operation(stack, args.samples)
                bare = workload.bare_round_trip(stack, sequential.meeting_id, 300)
                print(f"{args.clients} clients, {args.meetings} meetings at once ...", flush=True)
                results["concurrent"] = workload.concurrent(stack, args.meetings, args.clients)
                lag = results["concurrent"]["webhookLag"]
                stack.keep_log = bool(results["concurrent"]["errors"]) or lag["applied"] < lag["deliveries"]
            except workload.BenchError:
                stack.keep_log = True
                print(f"the app's log: {stack.log}", file=sys.stderr)
                raise
    except KeyboardInterrupt:
        print("interrupted; everything the bench started is stopped", file=sys.stderr)
        return 130
    results["bareRoundTrip"] = bare
    results["loadAverage"]["end"] = os.getloadavg()
    results["operations"] = {
        name: summarize(sequential.samples[name], bare["direct"]["medianMs"], BUDGETS[name]) for name in OPERATIONS
    }
    results["operations"]["webhook apply"]["byEvent"] = {
        event: {
            "medianMs": round(statistics.median(sample.ms for sample in group), 2),
            "storageMean": round(statistics.mean(sample.tables + sample.queue_puts for sample in group), 2),
            "storageMax": max(sample.tables + sample.queue_puts for sample in group),
        }
        for event, group in sequential.applied_by_event.items()
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    if stack.keep_log:
        print(f"FAILED: errors or deliveries not applied; the app's log: {stack.log}", file=sys.stderr)
        return 1
    if not all(op["withinBudget"] for op in results["operations"].values()):
        print("FAILED: over a round-trip budget (docs/data-model.md)", file=sys.stderr)
        return 1
    if results["importTime"]["ratio"] > IMPORT_RATIO_BUDGET:
        print(f"FAILED: importing function_app is over {IMPORT_RATIO_BUDGET}x its libraries alone", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
