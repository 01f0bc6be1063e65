"""Conversation items the app posted since a conversation's last invocation (content capture only).

The new agents' samples post the user's question as conversation items (``conversations.create(items=[...])``,
``conversations.items.create(conversation_id, items=[...])``) and invoke the agent with
``responses.create(conversation=...)`` and no ``input``: those items *are* the invocation's input, as the messages a
classic app posts to a thread are its next run's. Kept per conversation until its next invocation takes them;
bounded (the least recently used conversations are forgotten first, and a conversation keeps its newest items
only). Only lists and tuples are read: an iterator the app passes is the SDK's to consume.
"""

from __future__ import annotations

from typing import Any, Optional

from ..core.bounded import LruMap

MAX_CONVERSATIONS = 1024
MAX_ITEMS_PER_CONVERSATION = 64


class PostedItems:
    def __init__(self, max_conversations: int = MAX_CONVERSATIONS, max_items: int = MAX_ITEMS_PER_CONVERSATION) -> None:
        self._pending: LruMap[str, tuple[Any, ...]] = LruMap(max_conversations)
        self._max_items = max_items
        self.cut = 0  #: items not kept because a conversation held more than ``max_items`` before its invocation

    @property
    def forgotten(self) -> int:
        """Conversations whose posted items were forgotten (least recently used beyond ``max_conversations``)."""
        return self._pending.evicted

    def posted(self, conversation_id: Optional[str], items: Any) -> None:
        if not conversation_id or not isinstance(items, (list, tuple)) or not items:
            return
        new = tuple(items)

        def append(old: Optional[tuple[Any, ...]]) -> tuple[Any, ...]:
            joined = (old or ()) + new
            self.cut += max(len(joined) - self._max_items, 0)
            return joined[-self._max_items :]

        self._pending.update(conversation_id, append)

    def take(self, conversation_id: Optional[str]) -> tuple[Any, ...]:
        """The items posted since the last take (the invocation that takes them is their reader)."""
        if not conversation_id or conversation_id not in self._pending:
            return ()
        return self._pending.pop(conversation_id) or ()

    def clear(self) -> None:
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)
