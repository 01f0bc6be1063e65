"""The SDKs this package instruments. Any one is enough (``instruments-any``)."""

_instruments: tuple[str, ...] = ()
_instruments_any = (
    "azure-ai-agents >= 1.0.0, < 2",
    "azure-ai-projects >= 1.0.0b1, <= 1.0.0b10",
    "azure-ai-projects >= 2",  # the new Foundry agents (Responses API through the openai client)
)
