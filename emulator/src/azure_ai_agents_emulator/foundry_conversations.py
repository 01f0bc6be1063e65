"""Conversations and their items (``openai.conversations``), for the new Foundry agents.

Routes (relative to an OpenAI base URL: ``/openai/v1`` or an agent endpoint's
``/agents/{name}/endpoint/protocols/openai``, see :mod:`.foundry`):

* ``POST /conversations`` (``create``, with ``items``), ``GET|POST|DELETE /conversations/{id}`` (``retrieve`` /
  ``update`` / ``delete``);
* ``POST /conversations/{id}/items`` (``items.create``), ``GET /conversations/{id}/items`` (``items.list``, newest
  first unless ``order=asc``), ``GET|DELETE /conversations/{id}/items/{item_id}``.

Posted items are stored as the service returns them: with an ``id``, ``status: completed`` and message content
as parts (a string becomes one ``input_text`` part; an assistant's ``output_text``). A response made in a
conversation appends its input items and then its output items (see :mod:`.foundry`).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional

from .rest import Route, ServiceError, page

__all__ = ["FoundryConversations", "ROUTES", "item_text", "normalize_item"]

_CONVERSATION = r"/conversations/(?P<conversation_id>[^/]+)"
ROUTES: tuple[Route, ...] = (
    ("POST", r"/conversations", "conversation", "create_conversation"),
    ("GET", _CONVERSATION, "conversation", "get_conversation"),
    ("POST", _CONVERSATION, "conversation", "update_conversation"),
    ("DELETE", _CONVERSATION, "deletion", "delete_conversation"),
    ("POST", _CONVERSATION + r"/items", "conversation_item_list", "create_conversation_items"),
    ("GET", _CONVERSATION + r"/items", "conversation_item_list", "list_conversation_items"),
    ("GET", _CONVERSATION + r"/items/(?P<item_id>[^/]+)", "conversation_item", "get_conversation_item"),
    ("DELETE", _CONVERSATION + r"/items/(?P<item_id>[^/]+)", "conversation", "delete_conversation_item"),
)
#: Id prefixes of stored items, by type (others: the type's initials).
_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "workflow_action": "wfa"}


def normalize_item(item: Any, new_id: Callable[[str], str]) -> dict[str, Any]:
    """An input item as the service stores it: typed, with an id, message content as parts."""
    if not isinstance(item, dict):
        raise ServiceError(400, "invalid_request", "Every item must be an object")
    stored = copy.deepcopy(item)
    if "type" not in stored and "role" in stored:
        stored["type"] = "message"  # an EasyInputMessage
    kind = str(stored.get("type") or "message")
    stored["type"] = kind
    if kind == "message":
        role = stored.get("role") or "user"
        stored["role"] = role
        content = stored.get("content")
        part_type = "output_text" if role == "assistant" else "input_text"
        if isinstance(content, str):
            part: dict[str, Any] = {"type": part_type, "text": content}
            if part_type == "output_text":
                part["annotations"] = []
            stored["content"] = [part]
        elif not isinstance(content, list):
            stored["content"] = []
    if not stored.get("id"):
        prefix = _ID_PREFIXES.get(kind) or "".join(word[0] for word in kind.split("_")) or "item"
        stored["id"] = new_id(prefix)
    stored.setdefault("status", "completed")
    return stored


def item_text(item: dict[str, Any]) -> str:
    """The text of a message item's text parts ('' for other items)."""
    if item.get("type") != "message":
        return ""
    content = item.get("content")
    if isinstance(content, str):
        return content
    texts = [str(part.get("text") or "") for part in content or [] if isinstance(part, dict) and "text" in part]
    return " ".join(t for t in texts if t)


class FoundryConversations:
    """The ``_op_*`` methods of conversations and their items (a part of :class:`~.service.AgentsService`)."""

    # provided by AgentsService
    _lock: Any
    _new_id: Callable[[str], str]
    _now: Callable[[], float]

    def _reset_foundry_conversations(self) -> None:
        self._conversations: dict[str, dict[str, Any]] = {}
        self._conversation_items: dict[str, list[dict[str, Any]]] = {}

    def _conversation(self, conversation_id: str) -> dict[str, Any]:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise ServiceError(404, "not_found", f"Conversation '{conversation_id}' not found.")
        return conversation

    def _append_items(self, conversation_id: Optional[str], items: list[dict[str, Any]]) -> None:
        """Stores already normalized items at the end of a conversation (none: nothing)."""
        if conversation_id is not None:
            self._conversation_items[conversation_id].extend(copy.deepcopy(items))

    def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Copies of a conversation's items, oldest first (no request is logged)."""
        with self._lock:
            self._conversation(conversation_id)
            return copy.deepcopy(self._conversation_items[conversation_id])

    # ------------------------------------------------------------------ conversations

    def _op_create_conversation(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        items = body.get("items") or []
        if not isinstance(items, list):
            raise ServiceError(400, "invalid_request", "'items' must be a list")
        stored = [normalize_item(item, self._new_id) for item in items]
        conversation: dict[str, Any] = {
            "id": self._new_id("conv"),
            "object": "conversation",
            "created_at": int(self._now()),
            "metadata": body.get("metadata") or {},
        }
        self._conversations[conversation["id"]] = conversation
        self._conversation_items[conversation["id"]] = stored
        return conversation

    def _op_get_conversation(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._conversation(params["conversation_id"])

    def _op_update_conversation(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        conversation = self._conversation(params["conversation_id"])
        if isinstance(body.get("metadata"), dict):
            conversation["metadata"] = body["metadata"]
        return conversation

    def _op_delete_conversation(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        conversation_id = params["conversation_id"]
        self._conversation(conversation_id)
        del self._conversations[conversation_id]
        del self._conversation_items[conversation_id]
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    # ------------------------------------------------------------------ items

    def _op_create_conversation_items(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        conversation_id = self._conversation(params["conversation_id"])["id"]
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise ServiceError(400, "invalid_request", "'items' must be a non-empty list")
        stored = [normalize_item(item, self._new_id) for item in items]
        self._append_items(conversation_id, stored)
        return {
            "object": "list",
            "data": stored,
            "first_id": stored[0]["id"],
            "last_id": stored[-1]["id"],
            "has_more": False,
        }

    def _op_list_conversation_items(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        conversation_id = self._conversation(params["conversation_id"])["id"]
        return page(self._conversation_items[conversation_id], query)

    def _conversation_item(self, params: dict) -> dict[str, Any]:
        conversation_id = self._conversation(params["conversation_id"])["id"]
        for item in self._conversation_items[conversation_id]:
            if item["id"] == params["item_id"]:
                return item
        raise ServiceError(404, "not_found", f"Item '{params['item_id']}' not found in '{conversation_id}'.")

    def _op_get_conversation_item(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._conversation_item(params)

    def _op_delete_conversation_item(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        item = self._conversation_item(params)
        self._conversation_items[params["conversation_id"]].remove(item)
        return self._conversation(params["conversation_id"])
