"""The SMB levels of the Video Game Level Corpus, read from the installed `mario-gpt` package.

mario-gpt 0.1.3 cannot be imported with transformers 5 (it imports the removed
AutoModelWithLMHead), so its folder is located with importlib without executing it and the
level text is read out of `mario_gpt/level.py` with `ast` (the corpus is a string literal there).
"""
from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path

from smbwm.levels.level import Level, LevelError, parse_level

PACKAGE = "mario_gpt"
CORPUS_NAME = "FULL_LEVEL_STR_WITH_PATHS"  # all SMB levels side by side, with A* path markers


class CorpusError(RuntimeError):
    """mario-gpt is missing or its data is not where expected (one-line message)."""


def package_dir() -> Path:
    """The installed mario_gpt folder (find_spec on a top-level name does not run its code)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("the mario-gpt package is not installed: pip install mario-gpt==0.1.3 --no-deps")
    return Path(list(spec.submodule_search_locations)[0])


def tiles_dir() -> Path | None:
    """mario-gpt's 16x16 tile PNGs (smb-*.png), or None when the package is absent."""
    try:
        d = package_dir() / "data" / "tiles"
    except CorpusError:
        return None
    return d if (d / "smb-background.png").exists() else None


def _string_constants(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value.value
    return out


@lru_cache(maxsize=1)
def corpus_level() -> Level:
    """The whole corpus as one 14-row level (7294 columns in mario-gpt 0.1.3)."""
    src = package_dir() / "level.py"
    if not src.exists():
        raise CorpusError(f"{src} is missing: reinstall mario-gpt==0.1.3")
    consts = _string_constants(src)
    if CORPUS_NAME not in consts:
        raise CorpusError(f"{src} has no {CORPUS_NAME}; this mario-gpt version is not supported")
    try:
        return parse_level(consts[CORPUS_NAME], source=f"{src}:{CORPUS_NAME}")
    except LevelError as e:
        raise CorpusError(str(e)) from None


def corpus_windows(width: int, stride: int = 1, level: Level | None = None) -> list[Level]:
    """All windows of `width` columns (MarioGPT trains on 50-column = 700-token windows)."""
    level = level or corpus_level()
    if width > level.width:
        raise CorpusError(f"window width {width} exceeds the corpus width {level.width}")
    return [level.window(s, width) for s in range(0, level.width - width + 1, stride)]
