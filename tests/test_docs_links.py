"""Every relative link in README.md and docs/ resolves to a file or folder in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def links(text: str) -> list[str]:
    """Link targets of a markdown text, outside fenced code blocks and code spans.

    >>> links("see [a](b.md#x) and `[c](d.md)`\\n```\\n[e](f.md)\\n```\\n[g]: h.md")
    ['b.md#x', 'h.md']
    """
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    return INLINE.findall(text) + REFERENCE.findall(text)


def _relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith(("#", "//"))


def test_the_doc_set_is_found():
    assert ROOT / "README.md" in DOCS and len(DOCS) > 3


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    """Relative link targets of ``doc`` that name no file or folder inside ``root`` (anchors are not checked)."""
    broken = []
    for target in links(doc.read_text(encoding="utf-8")):
        if not _relative(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        resolved = (doc.parent / path).resolve()
        if not resolved.exists() or root.resolve() not in (resolved, *resolved.parents):
            broken.append(target)
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = broken_links(doc)
    assert not broken, f"{doc.relative_to(ROOT)}: links that do not resolve: {broken}"


def test_a_dead_link_is_caught(tmp_path):
    """The checker itself: a link relative to the wrong folder (the docs/workflow.md bug of issue 11), a missing
    file and a path leaving the repository fail; a good link, an anchor and a web address pass."""
    (tmp_path / "repo" / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("x")
    doc = tmp_path / "repo" / "docs" / "a.md"
    doc.write_text(
        "[self](docs/a.md) [ok](a.md#top) [gone](b.md) [out](../../outside.md) [here](#x) "
        "[web](https://example.org/a.md)\n"
    )
    assert broken_links(doc, tmp_path / "repo") == ["docs/a.md", "b.md", "../../outside.md"]
