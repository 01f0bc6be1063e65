"""The documentation holds together: a README short enough to read, and every relative link and #anchor in it and
in docs/ resolving (the file exists; the anchor is one of the target's headings, by GitHub's slug rules).

Fast and offline: it reads Markdown files only.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 15_000  # bytes
#: The pages whose links are checked: the README, docs/, and the other distributions' READMEs it links to.
CHECKED = sorted(
    {ROOT / "README.md", *ROOT.glob("docs/*.md"), ROOT / "emulator" / "README.md", ROOT / "exporters/nexus/README.md"}
)
#: Pages linked before they exist, written on another branch at the same time. A link to one of them may dangle
#: only while the page is absent; once it exists its anchors are checked like any other. Empty this after merging.
PENDING: set[str] = set()

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:[^>]*\s)?(?:id|name)=["']([^"']+)["']""", re.IGNORECASE)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:...


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (github-slugger): the rendered text, lower-cased, with punctuation and
    symbols removed (letters, digits, marks, ``-``, ``_`` and spaces stay), each space made a ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = _CODE_SPAN.sub(lambda m: m.group(2), text)
    kept = (c for c in text.lower() if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def _lines_outside_code(text: str) -> Iterator[tuple[int, str]]:
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered -1, -2... as GitHub does) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _lines_outside_code(path.read_text(encoding="utf-8")):
        found.update(_HTML_ANCHOR.findall(line))
        heading = _HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every relative link and image of a page, outside code blocks and code spans."""
    for number, line in _lines_outside_code(path.read_text(encoding="utf-8")):
        prose = _CODE_SPAN.sub("", line)
        targets = [m.group(1) for m in _INLINE_LINK.finditer(prose)]
        definition = _REFERENCE_DEFINITION.match(prose)
        if definition:
            targets.append(definition.group(1))
        for target in targets:
            if target and not _EXTERNAL.match(target):
                yield number, target


def broken_links(path: Path, root: Path = ROOT, pending: frozenset[str] = frozenset(PENDING)) -> list[str]:
    """What is wrong with a page's relative links, one line each (empty: all resolve)."""
    problems = []
    for number, target in links(path):
        where = f"{path.relative_to(root)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if root not in resolved.parents and resolved != root:
            problems.append(f"{where}: outside the repository")
            continue
        if not resolved.exists():
            if resolved.relative_to(root).as_posix() not in pending:
                problems.append(f"{where}: no such file")
            continue
        if not anchor:
            continue
        if resolved.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not Markdown")
        elif unquote(anchor) not in anchors(resolved):
            problems.append(f"{where}: no heading with anchor #{anchor} in {resolved.relative_to(root)}")
    return problems


def test_the_readme_is_at_most_15_kb():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size:,} bytes; move reference to docs/ (limit {README_LIMIT:,})"


@pytest.mark.parametrize("page", CHECKED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path):
    assert page.exists()
    assert broken_links(page) == []


def test_the_readme_shows_the_test_commands_ci_runs():
    """.ci/run runs "the README's test commands": each pytest command it runs is in one of the README's code blocks."""
    ci_commands = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if "-m pytest" in line]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    shown = {line.strip() for block in blocks for line in block.splitlines()}
    assert ci_commands and all(command in shown for command in ci_commands), (ci_commands, shown)


# ---- the checker itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("heading", "slug"),
    [  # as GitHub renders them
        ("Migrating to the new Foundry agents: classic run -> new invocation",
         "migrating-to-the-new-foundry-agents-classic-run---new-invocation"),
        ("One call: `configure_telemetry()`", "one-call-configure_telemetry"),
        ("Migrating from `gen_ai.thread.*`", "migrating-from-gen_aithread"),
        ("Nexus 401 / 403 / 429", "nexus-401--403--429"),
        ("Five-minute quickstart (no Azure account needed)", "five-minute-quickstart-no-azure-account-needed"),
        ("Find a run's trace (correlation)", "find-a-runs-trace-correlation"),
        ("See [the docs](docs/README.md) → here", "see-the-docs--here"),
    ],
)
def test_slugs_follow_github(heading: str, slug: str):
    assert github_slug(heading) == slug


def test_the_checker_reports_missing_files_and_anchors(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Part one\n\n## Part one\n\n```\n## Not a heading\n```\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/page.md#part-one) [repeat](docs/page.md#part-one-1) [self](#top) [web](https://example.com/x)\n"
        "[gone](docs/gone.md) [bad anchor](docs/page.md#part-two) [code](docs/page.md#not-a-heading)\n"
        "`[in code](docs/also-gone.md)` [later](docs/later.md)\n\n# Top\n"
    )
    problems = broken_links(readme, root=tmp_path, pending=frozenset({"docs/later.md"}))
    assert [p.split(": ")[1] for p in problems] == ["docs/gone.md", "docs/page.md#part-two", "docs/page.md#not-a-heading"]
