"""Interaction callbacks and the interaction webhook routes (followups, @original)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .models import LOADING_FLAG, FakeInteraction, FakeMessage, InteractionCallback
from .rest import API_PREFIX, ApiError, json_response, no_content, record_of, server_of

# Interaction callback types.
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7


def _interaction(request: web.Request) -> FakeInteraction:
    server = server_of(request)
    interaction = server.interactions.get(int(request.match_info["interaction_id"]))
    if interaction is None or interaction.token != request.match_info["token"]:
        raise ApiError(404, "Unknown interaction", 10062)
    return interaction


def _webhook(request: web.Request) -> FakeInteraction:
    """The acknowledged interaction behind ``/webhooks/{application_id}/{token}``."""
    server = server_of(request)
    interaction = server.interaction_by_token(request.match_info["token"])
    if (
        interaction is None
        or int(request.match_info["application_id"]) != server.application_id
        or interaction.callback is None
    ):
        raise ApiError(404, "Unknown Webhook", 10015)
    return interaction


def _webhook_message(request: web.Request, interaction: FakeInteraction) -> FakeMessage:
    target = request.match_info["message_id"]
    if target == "@original":
        msg = interaction.original
    else:
        msg = next((m for m in interaction.followups if m.id == int(target)), None)
    if msg is None or msg.deleted:
        raise ApiError(404, "Unknown Message", 10008)
    return msg


async def post_callback(request: web.Request) -> web.Response:
    """``POST /interactions/{id}/{token}/callback`` -> InteractionCallbackResponse body."""
    server = server_of(request)
    interaction = _interaction(request)
    if interaction.callback is not None:
        raise ApiError(400, "Interaction has already been acknowledged.", 40060)
    rec = record_of(request)
    body: dict[str, Any] = rec.json or {}
    cb_type = int(body["type"])
    data: dict[str, Any] = body.get("data") or {}
    interaction.callback = InteractionCallback(cb_type, data, rec.files)
    bot_id = server.bot_user.id
    if cb_type == CHANNEL_MESSAGE:
        interaction.original = await server.create_message(
            interaction.channel_id, bot_id, data, rec.files, interaction=interaction
        )
    elif cb_type == DEFERRED_CHANNEL_MESSAGE:
        placeholder = {"content": "", "flags": int(data.get("flags") or 0) | LOADING_FLAG}
        interaction.original = await server.create_message(
            interaction.channel_id, bot_id, placeholder, interaction=interaction
        )
    elif cb_type in (DEFERRED_UPDATE, UPDATE_MESSAGE) and interaction.message_id is not None:
        interaction.original = server.message(interaction.message_id)
        if cb_type == UPDATE_MESSAGE and interaction.original is not None:
            await server.edit_message(interaction.original, data, rec.files)
    server.notify()
    original = interaction.original
    summary: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type,
        "response_message_loading": cb_type == DEFERRED_CHANNEL_MESSAGE,
        "response_message_ephemeral": bool(original and original.ephemeral),
    }
    resource: dict[str, Any] = {"type": cb_type}
    if original is not None and cb_type in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, UPDATE_MESSAGE):
        summary["response_message_id"] = str(original.id)
        resource["message"] = original.data
    return json_response({"interaction": summary, "resource": resource})


async def post_followup(request: web.Request) -> web.Response:
    """``POST /webhooks/{app}/{token}``: a followup; the first one after a defer fills the original."""
    server = server_of(request)
    interaction = _webhook(request)
    rec = record_of(request)
    payload: dict[str, Any] = rec.json or {}
    original = interaction.original
    if original is not None and original.flags & LOADING_FLAG:
        msg = await server.edit_message(original, payload, rec.files)
    else:
        msg = await server.create_message(
            interaction.channel_id, server.bot_user.id, payload, rec.files, interaction=interaction
        )
    interaction.followups.append(msg)
    server.notify()
    return json_response(msg.data)


async def get_webhook_message(request: web.Request) -> web.Response:
    return json_response(_webhook_message(request, _webhook(request)).data)


async def patch_webhook_message(request: web.Request) -> web.Response:
    msg = _webhook_message(request, _webhook(request))
    rec = record_of(request)
    await server_of(request).edit_message(msg, rec.json or {}, rec.files)
    return json_response(msg.data)


async def delete_webhook_message(request: web.Request) -> web.Response:
    await server_of(request).delete_message(_webhook_message(request, _webhook(request)))
    return no_content()


def add_routes(app: web.Application) -> None:
    """Register interaction callback and webhook routes."""
    r = app.router
    r.add_post(f"{API_PREFIX}/interactions/{{interaction_id:\\d+}}/{{token}}/callback", post_callback)
    hook = f"{API_PREFIX}/webhooks/{{application_id:\\d+}}/{{token}}"
    r.add_post(hook, post_followup)
    msg = f"{hook}/messages/{{message_id}}"
    r.add_get(msg, get_webhook_message)
    r.add_patch(msg, patch_webhook_message)
    r.add_delete(msg, delete_webhook_message)
