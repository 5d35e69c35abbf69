"""Queue triggers, polled as the WebJobs Storage Queues extension polls them (QueueListener + QueueProcessor):
batches received invisible, randomized exponential back-off while idle or failing, base64 decoding, the
dequeue count checked against maxDequeueCount, failures released after visibilityTimeout, and poison queues.
One listener per queue-triggered function, whatever its name or queue."""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any

from azure.functions.queue import QueueMessage

from dev.host.configuration import QueueOptions
from dev.host.diagnostics import warn, warn_failure
from dev.host.functions import Function
from dev.host.storage import error_code, send_creating

# The queue listener receives messages invisible for 10 minutes (QueueListener._visibilityTimeout).
RECEIVE_VISIBILITY_TIMEOUT = 600


class Backoff:
    """RandomizedExponentialBackoffStrategy(QueuePollingIntervals.Minimum, maxPollingInterval)."""

    def __init__(self, minimum: float, maximum: float):
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.current, self.exponent = minimum, 0

    def next(self, succeeded: bool) -> float:
        if succeeded:
            self.current, self.exponent = self.minimum, 1
        elif self.current != self.maximum:
            interval = self.minimum
            if self.exponent > 0:
                interval += random.uniform(0.8, 1.2) * 2 ** (self.exponent - 1) * self.minimum
            if interval < self.maximum:
                self.current = interval
                self.exponent += 1
            else:
                self.current = self.maximum
        return self.current


class QueueListener:
    """Polls one function's queue on its own thread; messages run on batchSize + newBatchThreshold threads."""

    def __init__(
        self,
        function: Function,
        options: QueueOptions,
        clients: Callable[[str], Any],
        invoke: Callable[[Function, Any], Any],
        stop: threading.Event,
    ):
        assert function.queue_name is not None
        self.function, self.options, self.invoke, self.stop = function, options, invoke, stop
        self.queue = clients(function.queue_name)
        # QueueListenerFactory.CreatePoisonQueueReference: none for a poison queue or a too long name.
        poison = function.queue_name + "-poison"
        self.poison = None if function.queue_name.endswith("-poison") or len(poison) > 63 else clients(poison)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.batch_size + options.threshold, thread_name_prefix=f"dev-host-queue-{function.name}"
        )
        self.thread = threading.Thread(target=self._run, name=f"dev-host-poll-{function.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        self.executor.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self.queue.close()
            if self.poison is not None:
                self.poison.close()

    def _run(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        stop, options = self.stop, self.options
        backoff = Backoff(options.min_polling_interval, options.max_polling_interval)
        found_since_delay, exists, failing = False, False, False
        processing: set[concurrent.futures.Future[None]] = set()
        while not stop.is_set():
            batch = []
            try:
                if not exists:
                    # The listener checks that the queue exists and backs off while it does not; it never
                    # creates the trigger queue.
                    self.queue.get_queue_properties()
                    exists = True
                batch = list(
                    self.queue.receive_messages(
                        messages_per_page=options.batch_size,
                        max_messages=options.batch_size,
                        visibility_timeout=RECEIVE_VISIBILITY_TIMEOUT,
                    )
                )
                failing = False
            except ResourceNotFoundError:
                if exists or not failing:
                    warn(f"{self.function.name}: queue {self.function.queue_name!r} does not exist yet; polling")
                exists, failing = False, True
            except Exception as exc:  # storage down or unreachable: back off
                if not failing:
                    warn(f"{self.function.name}: polling {self.function.queue_name!r} failed: {exc!r}")
                exists, failing = False, True
            if not batch:
                stop.wait(backoff.next(found_since_delay))
                found_since_delay = False
                continue
            for message in batch:
                processing.add(self.executor.submit(self._process, message))
            found_since_delay = True
            # WaitForNewBatchThreshold: fetch again once no more than newBatchThreshold are in flight.
            while len(processing) > options.threshold and not stop.is_set():
                _, processing = concurrent.futures.wait(
                    processing, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
                )
            processing = {future for future in processing if not future.done()}

    def _process(self, message: Any) -> None:
        text: str = message.content or ""
        if message.dequeue_count > self.options.max_dequeue_count:
            self._poison(message, text)  # BeginProcessingMessageAsync
            return
        if self.options.message_encoding == "base64":
            try:
                body = base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                # The extension's MessageDecodingFailed handler moves undecodable messages to the poison queue.
                warn(f"{self.function.name}: message {message.id} is not base64; moving it to the poison queue")
                self._poison(message, text)
                return
        else:
            body = text.encode("utf-8")
        trigger = QueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        try:
            self.invoke(self.function, trigger)
        except Exception:
            warn_failure(f"{self.function.name}: message {message.id} failed (dequeue count {message.dequeue_count})")
            if self.poison is None:
                return  # no poison queue: the message stays invisible (no fast infinite loop)
            if message.dequeue_count >= self.options.max_dequeue_count:
                self._poison(message, text)
            else:
                self._storage(
                    "release",
                    lambda: self.queue.update_message(
                        message.id, message.pop_receipt, visibility_timeout=int(self.options.visibility_timeout)
                    ),
                )
            return
        self._delete(message)

    def _poison(self, message: Any, text: str) -> None:
        if self.poison is None:
            return
        warn(
            f"{self.function.name}: message {message.id} reached MaxDequeueCount of "
            f"{self.options.max_dequeue_count}; moving it to {self.function.queue_name}-poison"
        )
        if self._storage("poison", lambda: send_creating(self.poison, text)):
            self._delete(message)

    def _delete(self, message: Any) -> None:
        self._storage("delete", lambda: self.queue.delete_message(message.id, message.pop_receipt))

    def _storage(self, what: str, action: Callable[[], Any]) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            action()
            return True
        except ResourceNotFoundError:
            return False  # message or queue gone: nothing to do
        except Exception as exc:
            if error_code(exc) == "PopReceiptMismatch":
                return False  # someone else took the message over
            warn(f"{self.function.name}: {what} failed: {exc!r}")
            return False
