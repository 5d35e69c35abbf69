"""The repo's own Functions host: serves every trigger of `function_app.py` without Core Tools.

`python -m dev.host --port PORT` (or `DevHost(app).start()` in tests) reads the app through the
azure-functions library's own introspection and behaves like the Functions host under Core Tools:
HTTP routes with the route-template syntax, the route prefix, custom headers and request-size limit
of host.json, CORS from `local.settings.json`, queue triggers polled like the Storage extension, and
timer (or any non-HTTP) functions run on request through the admin API (`POST /admin/functions/NAME`).

Why not pycactus 0.5.0 (`cactus.flask.build_app_v2`): it adds Flask for HTTP only (no queue, timer, CORS,
size limit or custom headers), and its route mapping is not the host's: Werkzeug rules (case-sensitive
literals, Werkzeug's ordering), no `api` prefix for v2 apps, "no methods" means GET only, only `regex`
constraints (which need a converter it never registers; any other constraint hits a NameError on `tup`),
`req.path` as the URL, one value per header, and `logging.basicConfig(DEBUG)` on import.

Host behaviour reproduced here was read from the host's sources (azure-functions-host, the WebJobs
Storage Queues extension, Core Tools, ASP.NET Core CORS); see the comments next to each piece.

Where it knowingly differs from the real host: timer triggers are never scheduled (they run on request,
through the admin API or `--run-timer NAME`); retry policies are ignored (the banner says so per function);
only HTTP, queue and timer triggers and queue output bindings are served, and an app using anything else
is refused at start, naming what is not served.

The pieces, one concern each:

- `dev_host.py`: `DevHost`, which wires the rest together and starts and stops it;
- `project.py`: a project on disk (`host.json`, `local.settings.json`, `function_app.py`);
- `configuration.py`: host.json values as the host reads them (`QueueOptions`, TimeSpans, `%NAME%`);
- `functions.py`: the app's functions as the worker indexes them;
- `invocation.py`: one invocation as the worker runs it (threads, event loop, context, outputs);
- `route_templates.py`, `route_constraints.py`: route templates, their order and matching;
- `http_binding.py`: `func.HttpRequest` from a request, HTTP from what a function returns;
- `routing.py`: the request pipeline (CORS preflight, admin API, routes, body limit);
- `cors.py`: Core Tools' CORS policy;
- `admin.py`: the admin API, which is how timers run;
- `storage.py`, `queues.py`: queue clients and the queue trigger listener;
- `server.py`: the HTTP/1.1 server; `__main__.py`: the command line.
"""

from dev.host.configuration import QueueOptions, parse_timespan
from dev.host.dev_host import DevHost
from dev.host.diagnostics import DevHostError

__all__ = ["DevHost", "DevHostError", "QueueOptions", "parse_timespan"]
