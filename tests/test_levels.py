"""MarioGPT level text: parser errors, columns, the real corpus from mario-gpt, prompt statistics, PNG."""
from __future__ import annotations

import numpy as np
import pytest

from smbwm.levels.corpus import corpus_level, corpus_windows, tiles_dir
from smbwm.levels.level import HEIGHT, TILES, Level, LevelError, load_level, parse_level
from smbwm.levels.prompts import Prompt, PromptError, counts, parse_prompt, prompt_of
from smbwm.levels.render import level_image


def rows_with(width: int, place: dict[tuple[int, int], str] | None = None, ground: int = 2) -> list[str]:
    """Sky with `ground` rows of X at the bottom plus tiles at (row, col)."""
    grid = [["-"] * width for _ in range(HEIGHT - ground)] + [["X"] * width for _ in range(ground)]
    for (r, c), ch in (place or {}).items():
        grid[r][c] = ch
    return ["".join(r) for r in grid]


def test_parse_valid_level_and_tile_lookup():
    text = "\n".join(rows_with(6, {(11, 3): "E", (5, 2): "?"})) + "\n"
    lvl = parse_level(text)
    assert (lvl.width, lvl.height) == (6, HEIGHT)
    assert lvl.tile(3, 11) == "E" and lvl.tile(2, 5) == "?" and lvl.tile(0, 13) == "X"
    assert lvl.tile(-1, 3) == "-" and lvl.tile(6, 13) == "-"  # outside is sky
    assert lvl.column(3) == "-" * 11 + "E" + "XX"
    assert parse_level(lvl.text()) == lvl
    assert parse_level(text.replace("\n", "\r\n")) == lvl  # Windows line ends


@pytest.mark.parametrize("text, fragment", [
    ("\n".join(["---"] * 13), "has 13 rows, expected 14"),
    ("\n".join(["---"] * 15), "has 15 rows, expected 14"),
    ("\n".join(["---"] * 13 + ["--"]), "ragged rows: row 13 has 2 columns"),
    ("\n".join(["---"] * 6 + ["-Z-"] + ["---"] * 7), "unknown tile 'Z' at row 6, column 1"),
    ("\n".join(["-Y-"] + ["---"] * 13), "mask/padding filler"),
    ("", "has 1 rows"),
])
def test_parse_errors_are_one_line(text, fragment):
    with pytest.raises(LevelError) as e:
        parse_level(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_columns_round_trip_in_mariogpt_order():
    lvl = parse_level("\n".join(rows_with(4, {(12, 1): "<", (12, 2): ">", (0, 0): "o"})))
    cols = lvl.to_columns()
    assert len(cols) == 4 and all(len(c) == HEIGHT for c in cols)
    assert cols[0][0] == "X" and cols[0][-1] == "o"  # bottom to top
    assert Level.from_columns(cols) == lvl
    with pytest.raises(LevelError, match="column 1 has 13 tiles"):
        Level.from_columns([cols[0], cols[1][:-1]])


def test_window_clips_to_level():
    lvl = parse_level("\n".join(rows_with(10, {(3, 7): "S"})))
    w = lvl.window(5, 4)
    assert w.width == 4 and w.tile(2, 3) == "S"
    assert lvl.window(8, 10).width == 2


def test_load_level_names_the_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("---\n---\n")
    with pytest.raises(LevelError, match=str(bad)):
        load_level(bad)
    with pytest.raises(LevelError, match="cannot read level file"):
        load_level(tmp_path / "missing.txt")


def test_corpus_is_the_mariogpt_smb_text():
    lvl = corpus_level()
    assert lvl.height == HEIGHT and lvl.width > 5000
    used = set("".join(lvl.rows))
    assert used <= set(TILES) and {"X", "S", "?", "E", "<", ">", "[", "]", "B", "b", "o", "x"} <= used
    wins = corpus_windows(50, stride=500)
    assert all(w.width == 50 for w in wins) and wins[1].rows[5] == lvl.window(500, 50).rows[5]
    assert tiles_dir() is not None and (tiles_dir() / "smb-question.png").exists()


def test_prompt_thresholds_on_known_windows():
    # 50 columns with 2 ground rows = 100 blocks: "some" blocks (75 < n <= 176)
    plain = parse_level("\n".join(rows_with(50)))
    assert counts(plain) == {"pipes": 0, "enemies": 0, "blocks": 100}
    assert str(prompt_of(plain)) == "no pipes, no enemies, some blocks, low elevation"
    # one enemy is still "no" (<= 1); a cannon top counts as an enemy; 2-3 is "little"
    assert prompt_of(parse_level("\n".join(rows_with(50, {(11, 5): "E"})))).enemies == "no"
    assert prompt_of(parse_level("\n".join(rows_with(50, {(11, 5): "E", (10, 9): "B"})))).enemies == "little"
    four = {(11, c): "E" for c in (1, 2, 3, 4)}
    assert prompt_of(parse_level("\n".join(rows_with(50, four)))).enemies == "some"
    eight = {(11, c): "E" for c in range(8)}
    assert prompt_of(parse_level("\n".join(rows_with(50, eight)))).enemies == "many"
    # pipes counted by their "<>" tops: 1-2 little, 3-5 some, 6+ many
    pipes = lambda n: {**{(10, 3 * i): "<" for i in range(n)}, **{(10, 3 * i + 1): ">" for i in range(n)}}  # noqa: E731
    assert [prompt_of(parse_level("\n".join(rows_with(50, pipes(n))))).pipes for n in (1, 2, 3, 5, 6)] == \
        ["little", "little", "some", "some", "many"]
    # half-width ground: 50 blocks -> little; a full 14-row wall of 4 columns + ground -> many is > 176
    assert prompt_of(parse_level("\n".join(rows_with(25, ground=2)))).blocks == "little"
    walls = {(r, c): "X" for r in range(12) for c in range(7)}
    assert prompt_of(parse_level("\n".join(rows_with(50, walls)))).blocks == "many"
    # elevation: ground or a pipe top in the top 6 rows is "high"; row 6 is still low
    assert prompt_of(parse_level("\n".join(rows_with(50, {(5, 9): "X"})))).elevation == "high"
    assert prompt_of(parse_level("\n".join(rows_with(50, {(4, 9): "<"})))).elevation == "high"
    assert prompt_of(parse_level("\n".join(rows_with(50, {(6, 9): "X", (2, 2): "S"})))).elevation == "low"


def test_prompt_of_a_corpus_window_matches_prompter_counting():
    # Prompter's counting on the joined rows, bucketed with its thresholds
    for w in corpus_windows(50, stride=700):
        flat = "".join(w.rows)
        enemies = flat.count("E") + flat.count("B")
        blocks = sum(flat.count(c) for c in "XS?Q")
        p = prompt_of(w)
        assert p.enemies == ["no", "little", "some", "many"][int(np.digitize(enemies, [1, 3, 7], right=True))]
        assert p.blocks == ["little", "little", "some", "many"][int(np.digitize(blocks, [50, 75, 176], right=True))]
        assert p.pipes == ["no", "little", "some", "many"][int(np.digitize(flat.count("<>"), [0, 2, 5], right=True))]


def test_parse_prompt_accepts_partial_and_reordered_prompts():
    assert parse_prompt("many pipes, some enemies, low elevation") == Prompt("many", "some", "some", "low")
    assert parse_prompt("High elevation, no enemy, little blocks") == Prompt("some", "no", "little", "high")
    for bad, frag in [("lots of pipes", "cannot read"), ("many pipes, few pipes", "twice"),
                      ("no blocks", "'no' is not a blocks amount"), ("", "empty prompt"),
                      ("medium elevation", "use one of low|high")]:
        with pytest.raises(PromptError, match=frag):
            parse_prompt(bad)


def test_level_image_uses_package_tiles_and_fallback_colours():
    lvl = parse_level("\n".join(rows_with(5, {(8, 2): "?"})))
    img = level_image(lvl)
    assert img.shape == (HEIGHT * 16, 5 * 16, 3) and img.dtype == np.uint8
    flat = level_image(lvl, use_package=False)
    assert tuple(flat[8 * 16 + 8, 2 * 16 + 8]) == (252, 152, 56)
    assert not np.array_equal(img, flat)  # the package's tile art, not flat colours
    assert len(np.unique(img[8 * 16:9 * 16, 2 * 16:3 * 16].reshape(-1, 3), axis=0)) > 2
