"""What we know about the new Foundry agents: which version an invocation ran, and that version's instructions,
tools and output format, by (project endpoint, agent name[, version]).

Learned for free from the app's own agent calls (``create_version``, ``get``, ``get_version``, ``update_details``:
their results), and read once, off the app's path, through the fetcher when an invocation ended without showing
its version (the response echoed no ``agent_reference``) or, with content capture on, without its instructions and
tools (an agent made in the portal or by a deploy script). The read goes through the invocation's own ``openai``
client (its credentials; no retries; its own timeout), to ``{endpoint}/agents/{name}`` (the agent, its latest
version and its endpoint's version selector) and, when another version ran, ``.../versions/{version}``.

Which version an invocation ran, when its response does not say: through an agent endpoint, the endpoint's only
version-selection rule when it has one (a traffic split names no single version: none is claimed), else the latest
version; through an ``agent_reference`` without a version, the latest version.

Bounded: least recently used entries are forgotten first; a read that failed is not retried (its key is remembered
as read). Updating or deleting an agent forgets its routing (version facts never change: versions are immutable).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional
from urllib.parse import quote

from ..core import attributes as attrs
from ..core.bounded import LruMap
from ..core.fetcher import Fetcher
from . import attributes as rattrs

MAX_KNOWN = 1024
#: The agents API version the reads use (``azure-ai-projects`` 2.x's default).
API_VERSION = "v1"

Key = tuple[str, str]  # (project endpoint, agent name)


@dataclass(frozen=True)
class VersionFacts:
    """One agent version's definition, as the conventions record it (content fields kept only with capture on)."""

    name: str
    version: Optional[str]
    id: Optional[str] = None
    description: Optional[str] = None
    model: Optional[str] = None
    kind: Optional[str] = None
    output_type: Optional[str] = None
    instructions: Optional[str] = None
    tools: Any = None


@dataclass(frozen=True)
class Routing:
    """Which version an agent serves: its latest version, and its endpoint's single selected version."""

    latest: Optional[str]
    endpoint_version: Optional[str]
    has_selector: bool

    def version(self, via_endpoint: bool) -> Optional[str]:
        if via_endpoint and self.has_selector:
            return self.endpoint_version
        return self.latest


Resolved = Callable[[Optional[str], Optional[VersionFacts]], None]


class AgentDirectory:
    def __init__(self, fetcher: Fetcher, keep_content: bool, max_known: int = MAX_KNOWN) -> None:
        self._fetcher = fetcher
        self._keep_content = keep_content
        self._routing: LruMap[Key, Routing] = LruMap(max_known)
        self._versions: LruMap[tuple[str, str, str], VersionFacts] = LruMap(max_known)
        self._read: LruMap[tuple[str, ...], bool] = LruMap(max_known)  # keys read (or failed): never read again

    # ---- learning from the app's own calls ------------------------------------------------------------------
    def learn_version(self, endpoint: Optional[str], details: Any) -> Optional[VersionFacts]:
        """An agent version object (``create_version`` / ``get_version`` result, or an agent's latest version)."""
        facts = self._facts(details)
        if endpoint is None or facts is None or facts.version is None:
            return facts
        self._versions.put((endpoint, facts.name, facts.version), facts)
        return facts

    def learn_agent(self, endpoint: Optional[str], details: Any) -> None:
        """An agent object (``get`` / ``update_details`` result): its latest version and endpoint routing."""
        name = attrs.text_field(details, "name")
        if endpoint is None or name is None:
            return
        latest = self.learn_version(endpoint, attrs.field(attrs.field(details, "versions"), "latest"))
        selector = attrs.field(attrs.field(details, "agent_endpoint"), "version_selector")
        rules = attrs.field(selector, "version_selection_rules")
        rules = rules if isinstance(rules, list) else []
        single = rules[0] if len(rules) == 1 else None
        routing = Routing(
            latest=latest.version if latest else None,
            endpoint_version=rattrs._version(attrs.field(single, "agent_version")) if single is not None else None,
            has_selector=bool(rules),
        )
        self._routing.put((endpoint, name), routing)

    def created(self, endpoint: Optional[str], details: Any) -> None:
        """A new version: it is the agent's latest now (its endpoint's routing is unchanged)."""
        facts = self.learn_version(endpoint, details)
        if endpoint is None or facts is None or facts.version is None:
            return
        version = facts.version

        def newer(old: Optional[Routing]) -> Optional[Routing]:
            return Routing(version, old.endpoint_version, old.has_selector) if old is not None else None

        self._routing.update((endpoint, facts.name), newer)

    def forget(self, endpoint: Optional[str], name: Optional[str]) -> None:
        """The agent was updated or deleted: its routing is read again when needed."""
        if endpoint is not None and name is not None:
            self._routing.pop((endpoint, name))
            self._read.pop(("agent", endpoint, name))

    # ---- what an invocation needs -----------------------------------------------------------------------------
    def known(self, endpoint: Optional[str], name: str, version: Optional[str]) -> Optional[VersionFacts]:
        if endpoint is None or version is None:
            return None
        return self._versions.get((endpoint, name, version))

    def resolve(
        self,
        client: Any,
        endpoint: Optional[str],
        name: str,
        version: Optional[str],
        via_endpoint: bool,
        want_content: bool,
        done: Resolved,
    ) -> None:
        """Calls ``done(version, facts)`` with what is known or can be read (each at most once, off the app's
        path): at once when nothing needs reading, else from the fetcher's worker or the app's event loop."""
        if endpoint is None or client is None:
            done(version, None)
            return
        if version is None:
            routing = self._routing.get((endpoint, name))
            if routing is None:
                if self._read.get(("agent", endpoint, name)):
                    done(None, None)
                    return

                def then() -> None:
                    self.resolve(client, endpoint, name, None, via_endpoint, want_content, done)

                self._fetch(client, ("agent", endpoint, name), f"{endpoint}/agents/{quote(name, safe='')}", then)
                return
            version = routing.version(via_endpoint)
            if version is None:
                done(None, None)
                return
        facts = self._versions.get((endpoint, name, version))
        if facts is not None or not want_content or self._read.get(("version", endpoint, name, version)):
            done(version, facts)
            return
        found = version

        def then_version() -> None:
            done(found, self._versions.get((endpoint, name, found)))

        url = f"{endpoint}/agents/{quote(name, safe='')}/versions/{quote(version, safe='')}"
        self._fetch(client, ("version", endpoint, name, version), url, then_version)

    def _fetch(self, client: Any, key: tuple[str, ...], url: str, then: Callable[[], None]) -> None:
        endpoint = key[1]

        def done(result: Any, reason: Optional[str]) -> None:
            self._read.put(key, True)
            if reason is None and isinstance(result, Mapping):
                if key[0] == "agent":
                    self.learn_agent(endpoint, result)
                else:
                    self.learn_version(endpoint, result)
            then()

        options = {"params": {"api-version": API_VERSION}, "max_retries": 0}
        get = getattr(client, "get", None)
        if get is None:
            done(None, "error")
            return
        if inspect.iscoroutinefunction(get):

            async def fetch_async(timeout_s: float) -> Any:
                return await get(url, cast_to=object, options={**options, "timeout": timeout_s})

            self._fetcher.submit("agent", "|".join(key), fetch_async, done, owner=client)
        else:

            def fetch(timeout_s: float) -> Any:
                return get(url, cast_to=object, options={**options, "timeout": timeout_s})

            self._fetcher.submit("agent", "|".join(key), fetch, done, owner=client)

    def _facts(self, details: Any) -> Optional[VersionFacts]:
        name = attrs.text_field(details, "name")
        if name is None:
            return None
        definition = attrs.field(details, "definition")
        keep = self._keep_content
        instructions = attrs.field(definition, "instructions") if keep else None
        return VersionFacts(
            name=name,
            version=rattrs._version(attrs.field(details, "version")),
            id=attrs.text_field(details, "id"),
            description=attrs.text_field(details, "description"),
            model=attrs.text_field(definition, "model"),
            kind=attrs.text_field(definition, "kind"),
            output_type=rattrs.json_output_type(attrs.field(definition, "text")),
            instructions=instructions if isinstance(instructions, str) and instructions else None,
            tools=attrs.plain(attrs.field(definition, "tools")) if keep else None,
        )
