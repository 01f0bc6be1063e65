"""Checks that the instrumentation wheel carries only the instrumentation.

    python .ci/check_wheel.py dist/opentelemetry_instrumentation_azure_ai_agents-*.whl

Fails (exit 1) when the wheel holds the emulator, a fake server or credential, or a hand-written HTTP transport
(those live in the `azure-ai-agents-emulator` distribution and in tests/fakes/); prints the wheel's size.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

PACKAGE = "opentelemetry/instrumentation/azure_ai_agents/"
#: Words that must not name any file in the wheel.
FORBIDDEN_NAMES = re.compile(r"emulator|fake|mock|transport|server", re.IGNORECASE)
#: Code that belongs to a server, a fake credential or a transport of our own, never to the instrumentation.
FORBIDDEN_CODE = {
    "the emulator": re.compile(r"azure_ai_agents_emulator"),
    "a fake credential": re.compile(r"class \w*Fake\w*|FakeCredential"),
    "an HTTP server": re.compile(r"http\.server|BaseHTTPRequestHandler|socketserver|ThreadingHTTPServer"),
    "a hand-written HTTP transport": re.compile(
        r"\bHttpTransport\b|\bhttp\.client\b|^\s*import socket\b", re.MULTILINE
    ),
}

#: Files allowed one of the patterns above, with the reason (checked by name and pattern, nothing else).
ALLOWED = {
    (PACKAGE + "doctor/delivery.py", "a hand-written HTTP transport"): "the doctor's TCP connect probe (it tells "
    "'unreachable' from 'timeout' in a second); exporters still send through their own clients",
}


def problems(wheel: Path) -> list[str]:
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if FORBIDDEN_NAMES.search(name):
                found.append(f"{name}: file name")
            if not name.startswith(PACKAGE) and ".dist-info/" not in name:
                found.append(f"{name}: outside {PACKAGE}")
            if name.endswith(".py"):
                text = archive.read(name).decode("utf-8")
                found.extend(
                    f"{name}: {what}"
                    for what, pattern in FORBIDDEN_CODE.items()
                    if pattern.search(text) and (name, what) not in ALLOWED
                )
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    wheel = Path(argv[0])
    with zipfile.ZipFile(wheel) as archive:
        files = [i for i in archive.infolist() if not i.is_dir()]
        unpacked = sum(i.file_size for i in files)
    size = wheel.stat().st_size
    print(f"{wheel.name}: {size / 1024:.1f} KiB ({len(files)} files, {unpacked / 1024:.1f} KiB unpacked)")
    found = problems(wheel)
    for line in found:
        print(f"  not instrumentation: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
