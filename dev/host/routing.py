"""One HTTP request through the host's pipeline, in the host's order: a CORS preflight is answered at once,
`/admin/` goes to the admin API, then the first route that matches (404 when none does), the body limit (413)
and the function (500, empty, when it raises); host.json's custom headers and CORS go on the answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from dev.host.admin import AdminApi
from dev.host.cors import Cors, with_cors
from dev.host.diagnostics import warn_failure
from dev.host.functions import Function
from dev.host.http_binding import decode_path, http_request, response_parts
from dev.host.route_templates import Route
from dev.host.server import BodyTooLarge, Handler


class Router:
    """The pipeline over the app's routes, in the order the host tries them."""

    def __init__(
        self,
        routes: list[Route],
        admin: AdminApi,
        invoke: Callable[[Function, Any], Any],
        cors: Cors | None,
        custom_headers: Mapping[str, str],
        max_request_body: int,
    ):
        self.routes, self.admin, self.invoke = routes, admin, invoke
        self.cors, self.custom_headers, self.max_request_body = cors, custom_headers, max_request_body

    def respond(self, handler: Handler) -> tuple[int, str]:
        """Answer the request; the status and a note on what answered, for the access log."""
        method = handler.command.upper()
        target = urlsplit(handler.path)
        headers = handler.headers
        origin = headers.get("Origin")
        if self.cors and origin and method == "OPTIONS" and "Access-Control-Request-Method" in headers:
            # CorsMiddleware short-circuits every preflight with 204, with headers only for allowed origins.
            handler.skip_body()
            handler.send(204, self.cors.headers(origin, headers))
            return 204, " (CORS preflight)"
        cors_headers = self.cors.headers(origin) if self.cors and origin else []
        path = decode_path(target.path or "/")
        if path.lower().startswith("/admin/"):
            return self.admin.handle(handler, method, path, cors_headers)
        for route in self.routes:
            route_params = route.match(path, method)
            if route_params is not None:
                break
        else:
            handler.skip_body()
            handler.send(404, self._with_custom(cors_headers))
            return 404, ""
        function = route.function
        try:
            body = handler.read_body(self.max_request_body)
        except BodyTooLarge:
            handler.close_connection = True
            handler.send(413, self._with_custom(cors_headers))
            return 413, f" ({function.name})"
        except ValueError:
            handler.close_connection = True
            handler.send(400, cors_headers)
            return 400, ""
        request = http_request(method, target, headers, handler.server.server_address, route_params, body)
        try:
            status, response_headers, response_body = response_parts(self.invoke(function, request))
        except Exception:  # the host answers 500, empty body
            warn_failure(f"{function.name}: {method} {handler.path} failed")
            handler.send(500, self._with_custom(cors_headers))
            return 500, f" ({function.name})"
        handler.send(status, with_cors(self._with_custom(response_headers), cors_headers), response_body)
        return status, f" ({function.name})"

    def _with_custom(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # CustomHttpHeadersMiddleware: Response.Headers.TryAdd for each host.json customHeaders entry.
        present = {name.lower() for name, _ in headers}
        return headers + [(k, v) for k, v in self.custom_headers.items() if k.lower() not in present]
