"""The meetings backend's route table: every trigger of the app, each a few lines over `shared/`."""

import logging

import azure.functions as func

from shared import accounts, api, health, invites, jobs, joins, mail, meetings, openapi, retention
from shared import settings as app_settings
from shared.auth import Authenticator, Caller
from shared.context import Context
from shared.events import apply as events_apply
from shared.events import deliveries, signing, views
from shared.provider import clients_from_settings
from shared.storage import Storage

# The storage SDK logs every request at INFO: in Application Insights that is volume, not insight.
logging.getLogger("azure").setLevel(logging.WARNING)

# Read and validated once, at start-up: a bad setting stops indexing with one line naming it.
settings = app_settings.load()
ctx = Context(settings=settings, storage=Storage(settings), providers=clients_from_settings(settings))
authenticator = Authenticator(settings)
closed_accounts = accounts.ClosedAccounts(ctx.storage)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def signed_in(req: func.HttpRequest) -> Caller:
    caller = authenticator.authenticate(req.headers.get("Authorization"))
    api.identify(caller.id)
    return caller


def caller_of(req: func.HttpRequest) -> Caller:
    caller = signed_in(req)
    closed_accounts.check(caller.id)
    return caller


def meeting_response(meeting: dict, status: int = 200, headers: dict | None = None) -> func.HttpResponse:
    return api.respond(meeting, status, {"ETag": f'"{meeting["version"]}"', **(headers or {})})


@app.route(route="health", methods=["GET"])
@api.endpoint("health.get")
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    report, status = health.check(settings, ctx.storage)
    return api.respond(report, status)


@app.route(route="openapi.yaml", methods=["GET"])
@api.endpoint("openapi.get")
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.response()


@app.route(route="me", methods=["GET"])
@api.endpoint("me.get")
def get_me(req: func.HttpRequest) -> func.HttpResponse:
    return api.respond(caller_of(req).profile())


@app.route(route="me", methods=["DELETE"])
@api.endpoint("me.close")
def close_account(req: func.HttpRequest) -> func.HttpResponse:
    # Not behind the closed-account gate: closing again is a 204 too.
    accounts.close(ctx, closed_accounts, signed_in(req))
    return api.no_content()


@app.route(route="me/export", methods=["GET"])
@api.endpoint("me.export")
def export_account(req: func.HttpRequest) -> func.HttpResponse:
    return api.respond(accounts.export(ctx, caller_of(req)))


@app.route(route="meetings", methods=["POST"])
@api.endpoint("meetings.create")
def create_meeting(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    ctx.limits.take("create", caller.id)
    created = meetings.create(ctx, caller, api.json_body(req), req.headers.get("Idempotency-Key"))
    return meeting_response(created.meeting, 201, {"Location": f"/api/meetings/{created.meeting['id']}"})


@app.route(route="meetings", methods=["GET"])
@api.endpoint("meetings.list")
def list_meetings(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    scope, limit, cursor = meetings.parse_list_query(dict(req.params))
    return api.respond(meetings.list_for(ctx, caller, scope, limit, cursor))


@app.route(route="meetings/{meetingId}", methods=["GET"])
@api.endpoint("meetings.get")
def get_meeting(req: func.HttpRequest) -> func.HttpResponse:
    visible = meetings.load(ctx, caller_of(req), req.route_params["meetingId"])
    return meeting_response(meetings.render(visible.row, visible.role))


@app.route(route="meetings/{meetingId}", methods=["PATCH"])
@api.endpoint("meetings.update")
def update_meeting(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    body = api.json_body(req)
    meeting = meetings.update(ctx, caller, req.route_params["meetingId"], body, req.headers.get("If-Match"))
    return meeting_response(meeting)


@app.route(route="meetings/{meetingId}", methods=["DELETE"])
@api.endpoint("meetings.cancel")
def cancel_meeting(req: func.HttpRequest) -> func.HttpResponse:
    meetings.cancel(ctx, caller_of(req), req.route_params["meetingId"], req.headers.get("If-Match"))
    return api.no_content()


@app.route(route="meetings/{meetingId}/invites", methods=["POST"])
@api.endpoint("invites.create")
def create_invites(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    ctx.limits.take("invite", caller.id, 0)  # over the limit already: 429 before reading the body
    items = invites.invite(ctx, caller, req.route_params["meetingId"], api.json_body(req))
    return api.respond({"items": items}, 201)


@app.route(route="meetings/{meetingId}/invites", methods=["GET"])
@api.endpoint("invites.list")
def list_invites(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    limit, cursor = invites.parse_page_query(dict(req.params))
    return api.respond(invites.list_invites(ctx, caller, req.route_params["meetingId"], limit, cursor))


@app.route(route="meetings/{meetingId}/invites/mine/decline", methods=["POST"])
@api.endpoint("invites.decline")
def decline_invite(req: func.HttpRequest) -> func.HttpResponse:
    invites.decline(ctx, caller_of(req), req.route_params["meetingId"])
    return api.no_content()


@app.route(route="meetings/{meetingId}/invites/{inviteId}", methods=["DELETE"])
@api.endpoint("invites.revoke")
def revoke_invite(req: func.HttpRequest) -> func.HttpResponse:
    invites.revoke(ctx, caller_of(req), req.route_params["meetingId"], req.route_params["inviteId"])
    return api.no_content()


@app.route(route="meetings/{meetingId}/join", methods=["POST"])
@api.endpoint("meetings.join")
def join_meeting(req: func.HttpRequest) -> func.HttpResponse:
    return api.respond(joins.join(ctx, caller_of(req), req.route_params["meetingId"]))


@app.route(route="meetings/{meetingId}/end", methods=["POST"])
@api.endpoint("meetings.end")
def end_meeting(req: func.HttpRequest) -> func.HttpResponse:
    joins.end(ctx, caller_of(req), req.route_params["meetingId"])
    return api.respond({"status": "ending"}, 202)


@app.queue_trigger(arg_name="message", queue_name=ctx.storage.queue_name(jobs.QUEUE), connection="AzureWebJobsStorage")
def run_job(message: func.QueueMessage) -> None:
    jobs.run(ctx, message.get_body().decode("utf-8"))


@app.timer_trigger(schedule="0 30 3 * * *", arg_name="timer", run_on_startup=False)
def purge_expired(timer: func.TimerRequest) -> None:
    retention.purge(ctx)


@app.queue_trigger(arg_name="message", queue_name=ctx.storage.queue_name(mail.QUEUE), connection="AzureWebJobsStorage")
def send_mail(message: func.QueueMessage) -> None:
    mail.process(ctx, message.get_body().decode("utf-8"))


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def sweep_mail_outbox(timer: func.TimerRequest) -> None:
    mail.sweep(ctx)


# Provider webhooks (contract section 5). The signing keys are checked once here: a configured PEM
# that does not load stops start-up, naming the setting.
signing_keys = signing.SigningKeys.from_settings(settings)


@app.route(route="webhooks/dyte", methods=["POST"])
@api.endpoint("webhooks.receive")
def receive_webhook(req: func.HttpRequest) -> func.HttpResponse:
    # No bearer token: the provider's signature over the raw body is this route's authentication.
    return api.respond(deliveries.receive(ctx, signing_keys, req.get_body(), req.headers))


@app.queue_trigger(
    arg_name="message", queue_name=ctx.storage.queue_name(deliveries.QUEUE), connection="AzureWebJobsStorage"
)
def apply_webhook_event(message: func.QueueMessage) -> None:
    events_apply.run(ctx, message.get_body().decode("utf-8"))


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def sweep_webhook_events(timer: func.TimerRequest) -> None:
    deliveries.sweep(ctx)


@app.route(route="meetings/{meetingId}/sessions", methods=["GET"])
@api.endpoint("sessions.list")
def list_sessions(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    limit, cursor = invites.parse_page_query(dict(req.params))
    return api.respond(views.list_sessions(ctx, caller, req.route_params["meetingId"], limit, cursor))


@app.route(route="meetings/{meetingId}/recordings", methods=["GET"])
@api.endpoint("recordings.list")
def list_recordings(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    limit, cursor = invites.parse_page_query(dict(req.params))
    return api.respond(views.list_recordings(ctx, caller, req.route_params["meetingId"], limit, cursor))
