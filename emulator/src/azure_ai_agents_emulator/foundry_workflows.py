"""Workflow agents (``WorkflowAgentDefinition``): their YAML read into actions, and one emulated run of them.

A workflow run walks the trigger's top-level ``actions`` once, in order, and answers one ``workflow_action``
output item per action (``kind``, ``action_id``, ``previous_action_id``, ``status``). ``InvokeAzureAgent`` also
invokes the named agent (its latest version) on the workflow's input and adds that agent's output items, each
carrying the invoked agent's ``agent_reference``; ``SendActivity`` adds an assistant message (its literal
``activity``, or for an expression the last message an agent said). Conditions, loops (``GotoAction``) and
variables are not evaluated: every action runs once.

When an invoked agent waits for the app (an ``mcp_approval_request``, a ``function_call``...) the run stops
there, completed; the app's next request (``previous_response_id`` naming that response, with the answers as
input) resumes the run at that agent, which continues with those answers.

The YAML is read by :func:`parse_yaml`, a reader of the block-style subset workflows use (mappings, sequences,
plain and quoted scalars), so that the emulator needs no YAML library.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .foundry_conversations import item_text
from .foundry_plans import Outcome

__all__ = ["WorkflowPause", "parse_yaml", "play_workflow", "workflow_actions"]

#: Invokes an agent by name with (input items, history); returns its outcome and its agent_reference.
Invoke = Callable[[str, list[dict[str, Any]], list[dict[str, Any]]], tuple[Outcome, dict[str, Any]]]


@dataclass
class WorkflowPause:
    """Where a workflow run stopped for the app: the index of the action to resume at."""

    action_index: int
    previous_action_id: Optional[str]
    history: list[dict[str, Any]] = field(default_factory=list)


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner.replace('\\"', '"')
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def parse_yaml(text: str) -> Any:
    """The value of a block-style YAML document (mappings, sequences, scalars; no flow style or anchors)."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((len(raw) - len(raw.lstrip(" ")), stripped))
    value, _ = _block(lines, 0, lines[0][0] if lines else 0)
    return value


def _block(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[Any, int]:
    if at >= len(lines):
        return None, at
    if lines[at][1].startswith("- ") or lines[at][1] == "-":
        items: list[Any] = []
        while at < len(lines) and lines[at][0] == indent and lines[at][1].startswith("-"):
            rest = lines[at][1][1:].strip()
            if not rest:
                value, at = _block(lines, at + 1, lines[at + 1][0] if at + 1 < len(lines) else indent + 2)
            elif _is_pair(rest):  # "- key: value" starts a mapping indented past the dash
                inner = indent + (len(lines[at][1]) - len(rest))
                lines[at] = (inner, rest)
                value, at = _block(lines, at, inner)
            else:
                value, at = _scalar(rest), at + 1
            items.append(value)
        return items, at
    mapping: dict[str, Any] = {}
    while at < len(lines) and lines[at][0] == indent and _is_pair(lines[at][1]):
        key, _, rest = lines[at][1].partition(":")
        rest = rest.strip()
        if rest and rest not in ("|", ">", "|-", ">-"):
            mapping[key.strip()] = _scalar(rest)
            at += 1
        elif at + 1 < len(lines) and lines[at + 1][0] > indent:
            mapping[key.strip()], at = _block(lines, at + 1, lines[at + 1][0])
        elif at + 1 < len(lines) and lines[at + 1][0] == indent and lines[at + 1][1].startswith("-"):
            mapping[key.strip()], at = _block(lines, at + 1, indent)  # a sequence at the key's own indent
        else:
            mapping[key.strip()], at = None, at + 1
    return mapping, at


def _is_pair(text: str) -> bool:
    return bool(re.match(r"^[^'\"\s][^:]*:(\s|$)", text))


def workflow_actions(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The top-level actions of a workflow definition's trigger (``[]`` when its YAML cannot be read)."""
    source = definition.get("workflow")
    try:
        document = parse_yaml(source) if isinstance(source, str) else source
    except (IndexError, ValueError):
        return []
    trigger = document.get("trigger") if isinstance(document, dict) else None
    actions = trigger.get("actions") if isinstance(trigger, dict) else None
    return [a for a in actions if isinstance(a, dict)] if isinstance(actions, list) else []


def play_workflow(
    actions: list[dict[str, Any]],
    given: list[dict[str, Any]],
    invoke: Invoke,
    new_id: Callable[[str], str],
    resume: Optional[WorkflowPause] = None,
) -> tuple[Outcome, Optional[WorkflowPause]]:
    """One run (or its resumption) of ``actions``; returns the outcome and where it paused (None: it ended)."""
    outcome = Outcome(turns=0)
    start = resume.action_index if resume else 0
    previous = resume.previous_action_id if resume else None
    history = list(resume.history) if resume else []
    question = [i for i in given if i.get("type") == "message"] or [i for i in history if i.get("type") == "message"]
    for index in range(start, len(actions)):
        action = actions[index]
        action_id = str(action.get("id") or f"action_{index}")
        outcome.output.append(
            {
                "type": "workflow_action",
                "id": new_id("wfa"),
                "kind": str(action.get("kind") or "Unknown"),
                "action_id": action_id,
                "previous_action_id": previous,
                "status": "completed",
            }
        )
        before, previous = previous, action_id
        if action.get("kind") == "InvokeAzureAgent":
            agent = action.get("agent")
            name = agent.get("name") if isinstance(agent, dict) else None
            if not isinstance(name, str) or not name:
                continue
            answers = given if resume is not None and index == start else question[-1:]
            played, reference = invoke(name, answers, history)
            outcome.turns += played.turns
            for item in played.output:
                item["agent_reference"] = reference
            outcome.output.extend(played.output)
            history.extend([*answers, *played.output])
            if played.status != "completed":
                outcome.status, outcome.error = played.status, played.error
                return outcome, None
            if played.waits_for_app():
                return outcome, WorkflowPause(index, before, history)
        elif action.get("kind") == "SendActivity":
            activity = action.get("activity")
            text = activity if isinstance(activity, str) and not activity.startswith("{") else _last_said(outcome)
            outcome.output.append(
                {
                    "type": "message",
                    "id": new_id("msg"),
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            )
    return outcome, None


def _last_said(outcome: Outcome) -> str:
    for item in reversed(outcome.output):
        text = item_text(item)
        if text:
            return text
    return json.dumps({"workflow": "done"})
