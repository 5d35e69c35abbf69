"""The meetings backend's route table: every trigger of the app, each a few lines over `shared/`."""

import azure.functions as func

from shared import api, health, openapi
from shared import settings as app_settings
from shared.auth import Authenticator
from shared.storage import Storage

# Read and validated once, at start-up: a bad setting stops indexing with one line naming it.
settings = app_settings.load()
storage = Storage(settings)
authenticator = Authenticator(settings)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def caller_of(req: func.HttpRequest):
    caller = authenticator.authenticate(req.headers.get("Authorization"))
    api.identify(caller.id)
    return caller


@app.route(route="health", methods=["GET"])
@api.endpoint("health.get")
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    report, status = health.check(settings, storage)
    return api.respond(report, status)


@app.route(route="openapi.yaml", methods=["GET"])
@api.endpoint("openapi.get")
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.response()


@app.route(route="me", methods=["GET"])
@api.endpoint("me.get")
def get_me(req: func.HttpRequest) -> func.HttpResponse:
    return api.respond(caller_of(req).profile())
