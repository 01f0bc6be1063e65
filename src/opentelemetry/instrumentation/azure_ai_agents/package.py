"""The SDKs this package instruments. Either one is enough (``instruments-any``)."""

_instruments: tuple[str, ...] = ()
_instruments_any = (
    "azure-ai-agents >= 1.0.0, < 2",
    "azure-ai-projects >= 1.0.0b1, <= 1.0.0b10",
)
