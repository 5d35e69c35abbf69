"""The meetings backend's route table: every trigger of the app, each a few lines over `shared/`.

Background work is here too: the `jobs` queue's kinds and their handlers, the queues of webhook
deliveries and mail, and the timers that sweep what is pending and purge what has expired.
"""

import logging

import azure.functions as func

from shared import (
    accounts,
    api,
    followups,
    health,
    invites,
    jobs,
    joins,
    meetings,
    openapi,
    outbox,
    pending,
    recordings,
    retention,
    validation,
)
from shared import settings as app_settings
from shared.auth import Authenticator, Caller
from shared.closed_accounts import ClosedAccounts
from shared.context import Context
from shared.events import apply as events_apply
from shared.events import deliveries, signing, views
from shared.provider import clients_from_settings
from shared.schema import JOBS_QUEUE, MAIL_QUEUE, WEBHOOK_QUEUE
from shared.storage import Storage

# The storage SDK logs every request at INFO: in Application Insights that is volume, not insight.
logging.getLogger("azure").setLevel(logging.WARNING)

# Read and validated once, at start-up. A missing or malformed setting does not stop indexing: every
# function is still there, answering 503 `misconfigured` naming the setting, and health says so.
settings = app_settings.load(lenient=True)
ctx = Context(settings=settings, storage=Storage(settings), providers=clients_from_settings(settings))
ctx.closed = ClosedAccounts(ctx.storage)
authenticator = Authenticator(settings)
signing_keys = signing.SigningKeys.from_settings(settings)
endpoint = api.Endpoints(settings)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def signed_in(req: func.HttpRequest) -> Caller:
    caller = authenticator.authenticate(req.headers.get("Authorization"))
    api.identify(caller.id)
    return caller


def caller_of(req: func.HttpRequest) -> Caller:
    caller = signed_in(req)
    ctx.closed.check(caller.id)
    return caller


def meeting_response(meeting: dict, status: int = 200, headers: dict | None = None) -> func.HttpResponse:
    return api.respond(meeting, status, {"ETag": f'"{meeting["version"]}"', **(headers or {})})


def page_query(req: func.HttpRequest) -> tuple[int, str | None]:
    validation.query(req.params, {"limit", "cursor"})
    return validation.limit(req.params), req.params.get("cursor")


@app.route(route="health", methods=["GET"])
@endpoint("health.get", always=True)
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    report, status = health.check(ctx)
    return api.respond(report, status)


@app.route(route="openapi.yaml", methods=["GET"])
@endpoint("openapi.get", always=True)
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.response()


@app.route(route="me", methods=["GET"])
@endpoint("me.get")
def get_me(req: func.HttpRequest) -> func.HttpResponse:
    return api.respond(caller_of(req).profile())


@app.route(route="me", methods=["DELETE"])
@endpoint("me.close")
def close_account(req: func.HttpRequest) -> func.HttpResponse:
    # Not behind the closed-account gate: closing again is a 204 too.
    accounts.close(ctx, signed_in(req))
    return api.no_content()


@app.route(route="me/export", methods=["GET"])
@endpoint("me.export")
def export_account(req: func.HttpRequest) -> func.HttpResponse:
    return api.respond(accounts.export(ctx, caller_of(req)))


@app.route(route="meetings", methods=["POST"])
@endpoint("meetings.create")
def create_meeting(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    ctx.limits.take("create", caller.id)
    body = api.json_body(req)
    draft = meetings.parse_create(body)
    ctx.limits.take("invite", caller.id, len(draft.invitees))
    created = meetings.create(ctx, caller, draft, body, req.headers.get("Idempotency-Key"))
    return meeting_response(created.meeting, 201, {"Location": f"/api/meetings/{created.meeting['id']}"})


@app.route(route="meetings", methods=["GET"])
@endpoint("meetings.list")
def list_meetings(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    scope, limit, cursor = meetings.parse_list_query(req.params)
    return api.respond(meetings.list_for(ctx, caller, scope, limit, cursor))


@app.route(route="meetings/{meetingId}", methods=["GET"])
@endpoint("meetings.get")
def get_meeting(req: func.HttpRequest) -> func.HttpResponse:
    visible = meetings.load(ctx, caller_of(req), req.route_params["meetingId"])
    return meeting_response(visible.render())


@app.route(route="meetings/{meetingId}", methods=["PATCH"])
@endpoint("meetings.update")
def update_meeting(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    patch = meetings.parse_patch(api.json_body(req))
    meeting = meetings.update(ctx, caller, req.route_params["meetingId"], patch, req.headers.get("If-Match"))
    return meeting_response(meeting)


@app.route(route="meetings/{meetingId}", methods=["DELETE"])
@endpoint("meetings.cancel")
def cancel_meeting(req: func.HttpRequest) -> func.HttpResponse:
    meetings.cancel(ctx, caller_of(req), req.route_params["meetingId"], req.headers.get("If-Match"))
    return api.no_content()


@app.route(route="meetings/{meetingId}/invites", methods=["POST"])
@endpoint("invites.create")
def create_invites(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    ctx.limits.take("invite", caller.id, 0)  # over the limit already: 429 before reading the body
    invitees = invites.parse_invite_body(api.json_body(req))
    ctx.limits.take("invite", caller.id, len(invitees))
    items = invites.invite(ctx, caller, req.route_params["meetingId"], invitees)
    return api.respond({"items": items}, 201)


@app.route(route="meetings/{meetingId}/invites", methods=["GET"])
@endpoint("invites.list")
def list_invites(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    limit, cursor = page_query(req)
    return api.respond(invites.list_invites(ctx, caller, req.route_params["meetingId"], limit, cursor))


@app.route(route="meetings/{meetingId}/invites/mine/decline", methods=["POST"])
@endpoint("invites.decline")
def decline_invite(req: func.HttpRequest) -> func.HttpResponse:
    invites.decline(ctx, caller_of(req), req.route_params["meetingId"])
    return api.no_content()


@app.route(route="meetings/{meetingId}/invites/{inviteId}", methods=["DELETE"])
@endpoint("invites.revoke")
def revoke_invite(req: func.HttpRequest) -> func.HttpResponse:
    invites.revoke(ctx, caller_of(req), req.route_params["meetingId"], req.route_params["inviteId"])
    return api.no_content()


@app.route(route="meetings/{meetingId}/join", methods=["POST"])
@endpoint("meetings.join")
def join_meeting(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    ctx.limits.take("join", caller.id)
    return api.respond(joins.join(ctx, caller, req.route_params["meetingId"]))


@app.route(route="meetings/{meetingId}/end", methods=["POST"])
@endpoint("meetings.end")
def end_meeting(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    ctx.limits.take("end", caller.id)
    joins.end(ctx, caller, req.route_params["meetingId"])
    return api.respond({"status": "ending"}, 202)


@app.route(route="meetings/{meetingId}/sessions", methods=["GET"])
@endpoint("sessions.list")
def list_sessions(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    limit, cursor = page_query(req)
    return api.respond(views.list_sessions(ctx, caller, req.route_params["meetingId"], limit, cursor))


@app.route(route="meetings/{meetingId}/recordings", methods=["GET"])
@endpoint("recordings.list")
def list_recordings(req: func.HttpRequest) -> func.HttpResponse:
    caller = caller_of(req)
    limit, cursor = page_query(req)
    return api.respond(views.list_recordings(ctx, caller, req.route_params["meetingId"], limit, cursor))


# Provider webhooks (contract section 5).


@app.route(route="webhooks/dyte", methods=["POST"])
@endpoint("webhooks.receive")
def receive_webhook(req: func.HttpRequest) -> func.HttpResponse:
    # No bearer token: the provider's signature over the raw body is this route's authentication.
    return api.respond(deliveries.receive(ctx, signing_keys, req.get_body(), req.headers))


@app.queue_trigger(
    arg_name="message", queue_name=ctx.storage.queue_name(WEBHOOK_QUEUE), connection="AzureWebJobsStorage"
)
@endpoint.background
def apply_webhook_event(message: func.QueueMessage) -> None:
    events_apply.run(ctx, message.get_body().decode("utf-8"))


# Background jobs: every kind on the `jobs` queue, and what does it.
JOB_HANDLERS: dict[jobs.Kind, jobs.Handler] = {
    jobs.Kind.FOLLOW_UP: followups.run_job,
    jobs.Kind.CLOSE_ACCOUNT: accounts.close_job,
    jobs.Kind.COPY_RECORDING: recordings.copy_job,
}


@app.queue_trigger(arg_name="message", queue_name=ctx.storage.queue_name(JOBS_QUEUE), connection="AzureWebJobsStorage")
@endpoint.background
def run_job(message: func.QueueMessage) -> None:
    jobs.run(ctx, message.get_body().decode("utf-8"), JOB_HANDLERS)


@app.queue_trigger(arg_name="message", queue_name=ctx.storage.queue_name(MAIL_QUEUE), connection="AzureWebJobsStorage")
@endpoint.background
def send_mail(message: func.QueueMessage) -> None:
    outbox.deliver(ctx, message.get_body().decode("utf-8"))


@app.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False)
@endpoint.background
def sweep_pending(timer: func.TimerRequest) -> None:
    pending.sweep(ctx)
    health.record(ctx)


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
@endpoint.background
def sweep_webhook_events(timer: func.TimerRequest) -> None:
    deliveries.sweep(ctx)


@app.timer_trigger(schedule="0 30 3 * * *", arg_name="timer", run_on_startup=False)
@endpoint.background
def purge_expired(timer: func.TimerRequest) -> None:
    retention.purge(ctx)
