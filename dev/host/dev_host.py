"""`DevHost` serves one `func.FunctionApp`: it indexes the app once, then starts and stops together the HTTP
server, one queue listener per queue-triggered function and the admin API, and leaves no thread behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import azure.functions as func

from dev.host import project, route_templates
from dev.host.admin import AdminApi, on_request_trigger
from dev.host.configuration import DEFAULT_ROUTE_PREFIX, QueueOptions
from dev.host.cors import Cors
from dev.host.diagnostics import DevHostError
from dev.host.functions import Function, index
from dev.host.invocation import Invoker
from dev.host.queues import QueueListener
from dev.host.routing import Router
from dev.host.server import HttpServer
from dev.host.storage import Connections

# The host's Kestrel limit when FUNCTIONS_REQUEST_BODY_SIZE_LIMIT is not set
# (ScriptConstants.DefaultMaxRequestBodySize, azure-functions-host).
DEFAULT_MAX_REQUEST_BODY = 104_857_600
DEFAULT_PORT = 7071
DEFAULT_THREAD_COUNT = 16


class DevHost:
    """Serves a `func.FunctionApp`: HTTP routes, queue triggers, admin invocations (timers)."""

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        route_prefix: str = DEFAULT_ROUTE_PREFIX,
        cors_origins: Iterable[str] = (),
        cors_credentials: bool = False,
        custom_headers: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        queues: QueueOptions | None = None,
        max_request_body: int | None = None,
        thread_count: int | None = None,
        poll_queues: bool = True,
        access_log: bool = False,
        function_directory: str | os.PathLike[str] | None = None,
    ):
        self.settings: dict[str, str] = dict(os.environ if settings is None else settings)
        self.route_prefix = route_prefix.strip("/")
        self.custom_headers = dict(custom_headers or {})
        self.queue_options = queues or QueueOptions()
        self.max_request_body = (
            max_request_body
            if max_request_body is not None
            else self._setting_int("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", DEFAULT_MAX_REQUEST_BODY)
        )
        self.thread_count = thread_count or self._setting_int("PYTHON_THREADPOOL_THREAD_COUNT", DEFAULT_THREAD_COUNT)
        self.poll_queues = poll_queues
        self.access_log = access_log
        self.function_directory = str(function_directory or Path.cwd())
        self.default_port = DEFAULT_PORT
        self.cors = Cors(cors_origins, cors_credentials) if any(o.strip() for o in cors_origins) else None
        self.functions = index(app, self.settings)
        self._by_name = {function.name.lower(): function for function in self.functions}
        self.routes = route_templates.routes(self.functions, self.route_prefix)
        self._invoker = Invoker(self.thread_count, self.function_directory, self.settings)
        self._admin = AdminApi(self._by_name, self._invoker.invoke, self.max_request_body)
        self._router = Router(
            self.routes, self._admin, self._invoker.invoke, self.cors, self.custom_headers, self.max_request_body
        )
        self._stopping = threading.Event()
        self._server: HttpServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._listeners: list[QueueListener] = []
        # The listeners on one connection share its pool: room for each one's poll and messages in flight.
        options, listeners = self.queue_options, sum(f.is_queue and not f.disabled for f in self.functions)
        per_listener = options.batch_size + options.threshold + 4
        self._queue_connections = Connections(self.settings, per_listener * max(1, listeners))

    def _setting_int(self, name: str, default: int) -> int:
        value = (self.settings.get(name) or "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else default

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> DevHost:
        if self._server is not None:
            raise DevHostError("already started")
        self._stopping.clear()
        if self.poll_queues:
            for function in self.functions:
                if function.is_queue and not function.disabled:
                    assert function.connection is not None
                    clients = self._queue_connections.clients(function.connection)
                    self._listeners.append(
                        QueueListener(function, self.queue_options, clients, self._invoker.invoke, self._stopping)
                    )
        self._server = HttpServer((host, port), self._router.respond, self.access_log)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="dev-host-http", daemon=True
        )
        self._serve_thread.start()
        for listener in self._listeners:
            listener.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise DevHostError("not started")
        return self._server.url

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive clients reuse one)."""
        return self._server.accepted if self._server else 0

    @property
    def nodelay_connections(self) -> int:
        """Accepted connections on which TCP_NODELAY is confirmed set."""
        return self._server.nodelay if self._server else 0

    def stop(self) -> None:
        """Stop accepting, let in-flight work finish, stop pollers; leaves no threads behind."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.end_idle_connections()
            server.server_close()  # joins the connection threads
            assert self._serve_thread is not None
            self._serve_thread.join()
        for listener in self._listeners:
            listener.join()
        self._listeners = []
        self._queue_connections.close()
        self._admin.drain()
        self._invoker.close()

    def __enter__(self) -> DevHost:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- invocation --------------------------------------------------------------------------------

    def function(self, name: str) -> Function:
        function = self._by_name.get(name.lower())
        if function is None:
            raise DevHostError(f"no function named {name!r}")
        return function

    def run_function(self, name: str, input: str = "") -> Any:
        """Invoke a non-HTTP function now, like the admin API; raises what the function raises."""
        function = self.function(name)
        return self._invoker.invoke(function, on_request_trigger(function, input))

    # -- description -------------------------------------------------------------------------------

    def describe(self, base_url: str | None = None) -> list[str]:
        base = base_url or (self.url if self._server else f"http://127.0.0.1:{self.default_port}")
        lines = []
        width = max((len(function.name) for function in self.functions), default=0)
        for function in self.functions:
            if function.disabled:
                detail = "disabled (AzureWebJobs.<name>.Disabled)"
            elif function.is_http:
                methods = function.methods
                shown = ",".join(sorted(methods)) if methods else "all methods"
                detail = f"[{shown}] {base}/{route_templates.template(function, self.route_prefix).lstrip('/')}"
            elif function.is_queue:
                detail = f"queue {function.queue_name!r} (connection {function.connection})"
                if not self.poll_queues:
                    detail += ", not polled"
            else:
                schedule = function.trigger.get("schedule")
                detail = f"timer {schedule!r}, not scheduled: POST {base}/admin/functions/{function.name}"
            if function.retry:
                detail += " (retry policy ignored by the dev host)"
            lines.append(f"  {function.name.ljust(width)}  {detail}")
        return lines

    def banner(self) -> str:
        lines = [f"dev.host: Functions app on {self.url} (Core Tools stand-in; Ctrl-C or SIGTERM stops it)"]
        lines.append("Functions:")
        lines += self.describe() or ["  (none)"]
        lines.append(
            "Timer triggers are NOT scheduled by the dev host: run one with "
            'POST /admin/functions/<name> {"input": ""} or `python -m dev.host --run-timer NAME`.'
        )
        if self.cors:
            origins = "*" if self.cors.any_origin else ", ".join(sorted(self.cors.origins))
            lines.append(f"CORS: {origins} (credentials {'on' if self.cors.credentials else 'off'})")
        lines.append(f"Request body limit: {self.max_request_body} bytes; worker threads: {self.thread_count}")
        return "\n".join(lines)

    # -- project loading ---------------------------------------------------------------------------

    @classmethod
    def from_project(cls, root: Path, settings_override: Mapping[str, str] | None = None, **kwargs: Any) -> DevHost:
        """Read host.json and local.settings.json, merge settings into os.environ, import `function_app`.

        The process environment wins over `local.settings.json` `Values` (as app settings do in Azure);
        `settings_override` wins over both. Import errors (the app's own SettingsError) propagate.
        """
        root = Path(root).resolve()
        options, local_port = project.read(root, settings_override)
        app = project.import_app(root)
        host = cls(app, settings=dict(os.environ), **{**options, **kwargs})
        host.default_port = DEFAULT_PORT if local_port is None else local_port
        return host
