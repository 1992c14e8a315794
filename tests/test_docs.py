"""README and docs/ point at things that exist: every relative link (and its #anchor), every quoted
`python src/...` / `bash scripts/...` command, and every quoted source or config file path."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_COMMAND = re.compile(r"\b(?:python|bash|torchrun)\b[^\n`|]*?\s((?:src|scripts|tests)/[\w./-]+\.(?:py|sh))")
_PATH = re.compile(r"`((?:src|scripts|config|tests)/[\w./-]+\.(?:py|sh|yaml))`")
_DATA_TOOL = re.compile(r"python src/dataset\.py (\S+)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\]\([^)]*\)|\[", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    text = _FENCE.sub("", md.read_text())
    return {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.M)}


def problems(md: Path, root: Path = ROOT) -> list[str]:
    """Every broken reference in one markdown file, as 'file: what' lines."""
    text = md.read_text()
    out = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):          # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (md.parent / path_part).resolve() if path_part else md
        if not dest.exists():
            out.append(f"{md.name}: link to missing {target}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{md.name}: link to missing anchor {target}")
    for rel in _COMMAND.findall(text) + _PATH.findall(text):
        if not (root / rel).is_file():
            out.append(f"{md.name}: names missing file {rel}")
    from dataset import TOOLS
    out += [f"{md.name}: no data tool {tool!r}" for tool in _DATA_TOOL.findall(text)
            if not tool.startswith("<") and tool.strip("`") not in TOOLS]
    return out


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_commands_name_existing_files(md):
    assert problems(md) == []


def test_docs_pages_exist_and_readme_is_a_guide():
    names = {p.name for p in DOCS}
    assert {"data.md", "model.md", "agents.md", "levels.md", "benchmarks.md"} <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_checker_finds_broken_references(tmp_path):
    (tmp_path / "other.md").write_text("# A heading: `with code`\n")
    md = tmp_path / "page.md"
    md.write_text("[ok](other.md#a-heading-with-code) [bad](missing.md) [gone](other.md#nope)\n"
                  "    python src/no_such_tool.py --x\n    bash scripts/nothing.sh\n"
                  "`config/none.yaml` and `python src/play.py`\n    python src/dataset.py shuffle DIR\n")
    found = problems(md)
    assert found == ["page.md: link to missing missing.md", "page.md: link to missing anchor other.md#nope",
                     "page.md: names missing file src/no_such_tool.py",
                     "page.md: names missing file scripts/nothing.sh",
                     "page.md: names missing file config/none.yaml", "page.md: no data tool 'shuffle'"]
