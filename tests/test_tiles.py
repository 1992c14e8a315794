"""The tile book (models.tiles): built by scripts/build_tile_book.py from real episodes, stored in the
checkpoint folder, and snapping drawn cells back onto the real game's tiles."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import ROOT, build_tile_book

from smbwm.data.episode import list_episodes, read_episode
from smbwm.models.mario_sprite import find_mario
from smbwm.models.palette import NES_PALETTE, palette_index
from smbwm.models.sampler import SamplerConfig
from smbwm.models.tiles import TileBook, cell_hashes, frame_cells, hud_table, ink_masks
from smbwm.models.world_model import TILES_FILE, WorldModel, to_model, to_uint8
from smbwm.utils.checkpoint import CheckpointError


def real_frames(episodes) -> np.ndarray:
    return np.concatenate([read_episode(p).frames[::4] for p in list_episodes(episodes)])


def book_of(frames: np.ndarray) -> TileBook:
    """Every cell of these frames, counted."""
    cells = frame_cells(palette_index(to_model(frames)).numpy().astype(np.uint8)).reshape(-1, 64)
    _, first, counts = np.unique(cell_hashes(cells), return_index=True, return_counts=True)
    return TileBook(torch.as_tensor(cells[first]), torch.as_tensor(counts))


def test_the_script_writes_a_book_that_holds_its_frames_and_leaves_them_as_they_are(tiles_checkpoint, tiny_checkpoint,
                                                                                    real_episodes):
    meta = json.loads((tiles_checkpoint / "model.json").read_text())
    report = json.loads((tiles_checkpoint / "tiles_report.json").read_text())
    model, _ = WorldModel.load(tiles_checkpoint)
    assert isinstance(model.tiles, TileBook) and len(model.tiles) == meta["tiles"]["count"] == report["tiles"] > 10
    assert model.tiles.hud_table and tuple(model.tiles.hud_allowed.shape) == (4, 32, report["hud_tiles"])
    assert 1 <= report["hud_tiles_per_cell"]["min"] <= report["hud_tiles_per_cell"]["max"] < report["hud_tiles"]
    # held out = the same frames, every cell kept: the book holds all of them and the snap changes nothing
    held = report["heldout"][str(real_episodes)]
    assert report["training_cells_in_book"] == held["cells_in_book"] == 1.0
    assert held["pixels_changed_by_snap"] == held["frames_changed_by_snap"] == 0.0
    assert WorldModel.load(tiny_checkpoint)[0].tiles is None              # the source checkpoint is untouched


def test_bad_arguments_and_a_missing_file_are_one_clear_line(tiles_checkpoint, tiny_checkpoint, tmp_path):
    done = build_tile_book(["--data", str(tmp_path), "--checkpoint", str(tiny_checkpoint)], cwd=tmp_path)
    assert done.returncode != 0 and "no episodes in" in done.stderr and "Traceback" not in done.stderr
    broken = tmp_path / "ck"
    shutil.copytree(tiles_checkpoint, broken)
    (broken / TILES_FILE).unlink()
    with pytest.raises(CheckpointError, match=TILES_FILE):
        WorldModel.load(broken)


def test_snap_puts_damaged_background_cells_back_and_leaves_mario_and_far_cells_alone(real_episodes):
    frames = real_frames(real_episodes)
    book = book_of(frames)
    rng = np.random.default_rng(0)
    shown, mx, my = find_mario(frames)
    i = int(np.flatnonzero(shown)[0])
    real = frames[i]
    damaged = real.copy()
    # 6 wrong pixels in every cell of the bottom rows (ground, far from Mario), Mario turned the other
    # way, and one cell of the sky turned into noise that is near no tile
    for cy in range(224, 240, 8):
        for cx in range(0, 256, 8):
            for _ in range(6):
                damaged[cy + rng.integers(8), cx + rng.integers(8)] = NES_PALETTE[rng.integers(len(NES_PALETTE))]
    y0, x0 = int(my[i]) - 8, int(mx[i]) - 8
    damaged[y0:y0 + 16, x0:x0 + 16] = damaged[y0:y0 + 16, x0:x0 + 16][:, ::-1].copy()
    noise = rng.integers(len(NES_PALETTE), size=(8, 8))
    damaged[40:48, 8:16] = np.array(NES_PALETTE, np.uint8)[noise]

    out, changed = book.snap(to_model(damaged[None]), 16)
    out = to_uint8(out)[0]
    assert np.array_equal(out[224:240], real[224:240])                          # the ground is the game's again
    assert np.array_equal(out[y0:y0 + 16, x0:x0 + 16], damaged[y0:y0 + 16, x0:x0 + 16])   # Mario: as drawn
    assert np.array_equal(out[40:48, 8:16], damaged[40:48, 8:16])               # near nothing: as drawn
    assert 0 < changed[0] < 0.2
    same, _ = book.snap(to_model(damaged[None]), 0)                                # 0: nothing is near enough
    assert np.array_equal(to_uint8(same)[0][224:240], damaged[224:240])


def test_remembered_answers_are_the_computed_ones_also_when_the_memory_starts_over(real_episodes, monkeypatch):
    import smbwm.models.tiles as tiles
    frames = real_frames(real_episodes)
    book = book_of(frames[::2])
    cells = frame_cells(palette_index(to_model(frames[1::2])).numpy().astype(np.uint8)).reshape(-1, 64)
    damaged = cells.copy()
    damaged[:, ::9] = (damaged[:, ::9] + 1) % len(NES_PALETTE)
    fresh = book.nearest(damaged)
    monkeypatch.setattr(tiles, "MEMO_SIZE", 50)
    for piece in np.array_split(np.arange(len(damaged)), 7):       # remembered, forgotten, computed again
        best, diff = book.nearest(damaged[piece])
        assert np.array_equal(best, fresh[0][piece]) and np.array_equal(diff, fresh[1][piece])
    assert np.all(fresh[1] >= 0) and np.all(fresh[1] <= 64)


def test_the_world_models_step_snaps_only_when_the_sampler_asks(tiles_checkpoint, real_episodes):
    model, _ = WorldModel.load(tiles_checkpoint)
    ep = read_episode(list_episodes(real_episodes)[0])
    c = model.context
    from smbwm.data.lowres import downsample
    obs = to_model(downsample(ep.frames[:c]))[None]
    last = to_model(ep.frames[c - 1:c])
    act = torch.zeros(1, c, 6)
    past = torch.zeros(1, c - 1)
    outs = {}
    for snap in (0, 64):
        g = torch.Generator().manual_seed(0)
        outs[snap] = model.step(obs, last, act, past, SamplerConfig(num_steps=1, tile_snap=snap), generator=g)
    assert "tiles" not in outs[0].timings_ms and "tiles" in outs[64].timings_ms
    # max_diff 64: every cell not around Mario becomes a book entry
    cells = frame_cells(palette_index(outs[64].full).numpy().astype(np.uint8))
    shown, _, _ = find_mario(to_uint8(outs[64].full))
    assert shown[0] or model.tiles.known(cells).all()
    assert model.tiles.known(cells).mean() >= model.tiles.known(
        frame_cells(palette_index(outs[0].full).numpy().astype(np.uint8))).mean()
    # hud_snap: the HUD's cells alone; the playfield is the frame as drawn, pixel for pixel
    hud = model.step(obs, last, act, past, SamplerConfig(num_steps=1, hud_snap=64), generator=torch.Generator().manual_seed(0))
    assert "tiles" in hud.timings_ms and torch.equal(hud.full[:, :, 32:], outs[0].full[:, :, 32:])
    assert model.tiles.known(frame_cells(palette_index(hud.full[:, :, :32]).numpy().astype(np.uint8))).all()
    # display_snap: the frame shown is snapped, the frame the dream goes on from is the one drawn
    disp = model.step(obs, last, act, past, SamplerConfig(num_steps=1, display_snap=64), generator=torch.Generator().manual_seed(0))
    assert torch.equal(disp.full, outs[0].full) and torch.equal(disp.shown, outs[64].full)
    assert outs[0].shown is outs[0].full


def test_a_display_snap_changes_what_is_shown_and_nothing_the_dream_does(tiles_checkpoint, real_episodes):
    """Open loop over real context: the same draws, scrolls and low-res frames with and without the snap of
    the shown frames; the shown frames hold more of the game's tiles."""
    from smbwm.evaluation.fidelity import Rollout, pick_segments
    model, _ = WorldModel.load(tiles_checkpoint)
    segs = pick_segments(list_episodes(real_episodes), model.context + 6, 2, np.random.default_rng(0), "test")
    runs = {}
    for snap in (0, 64):
        roll = Rollout(model, SamplerConfig(num_steps=2, s_churn=1.0, mario_retries=2, display_snap=snap), "cpu", None, seed=3)
        runs[snap] = roll.run(segs, 6)
    assert np.array_equal(runs[0][1], runs[64][1])                  # every low-res frame the same
    assert not np.array_equal(runs[0][0], runs[64][0])
    share = {k: model.tiles.game_tile_share(v[0].reshape(-1, 240, 256, 3), 32)[1].mean() for k, v in runs.items()}
    assert share[64] > share[0]


def test_the_hud_snap_repaints_garbled_digits_and_nothing_below(real_episodes):
    """The shipped book on a real frame whose HUD digits and bricks got a few wrong pixels: the HUD is the
    game's again, the playfield keeps every wrong pixel."""
    model, _ = WorldModel.load(ROOT / "checkpoints")
    real = real_frames(real_episodes)[3]
    damaged = real.copy()
    rng = np.random.default_rng(1)
    for y, x in zip(rng.integers(16, 32, 40), rng.integers(16, 240, 40)):     # specks on the HUD's text rows
        damaged[y, x] = NES_PALETTE[rng.integers(len(NES_PALETTE))]
    damaged[200:208, 8:16] = damaged[200:208, 8:16][::-1].copy()                  # a playfield cell upside down
    assert not np.array_equal(damaged[:32], real[:32])
    out, changed = model.tiles.snap(to_model(damaged[None]), 16, rows=32)
    out = to_uint8(out)[0]
    assert np.array_equal(out[:32], real[:32]) and np.array_equal(out[32:], damaged[32:])
    assert 0 < changed[0] < 32 / 240


def test_the_hud_snap_restores_a_digit_garbled_past_every_tile_but_leaves_a_sprite_there(real_episodes):
    """The coin counter's second digit drawn as white-and-background speckle, too far from every digit for
    the 16-pixel limit: being in the font's colours it is a garbled glyph and comes back as a digit (left
    as drawn, play copied it on for good). The same speckle in a sprite's red stays as drawn."""
    model, _ = WorldModel.load(ROOT / "checkpoints")
    book = model.tiles
    real = real_frames(real_episodes)[3]
    cell = (slice(24, 32), slice(112, 120))                               # HUD cell (3, 14)
    ink, paper = np.array([252, 252, 252], np.uint8), real[24, 112].copy()
    rng = np.random.default_rng(3)
    garbled = real.copy()
    garbled[cell] = np.where(rng.random((8, 8, 1)) < 0.5, ink, paper)
    idx = lambda f: frame_cells(palette_index(to_model(f[None])).numpy().astype(np.uint8))[0, 3 * 32 + 14]   # noqa: E731
    digits = book.hud_tiles.numpy()[book.hud_allowed.numpy()[3, 14]]
    assert (digits != idx(garbled)).sum(1).min() > 16                   # no digit within the limit
    out = to_uint8(book.snap(to_model(garbled[None]), 16, rows=32)[0])[0]
    assert (digits == idx(out)).all(1).any() and len(np.unique(idx(out))) == 2       # a digit, in two colours
    assert np.array_equal(np.delete(out, np.s_[112:120], 1), np.delete(garbled, np.s_[112:120], 1))
    sprite = real.copy()
    sprite[cell] = np.where(rng.random((8, 8, 1)) < 0.5, np.array([248, 56, 0], np.uint8), paper)
    assert np.array_equal(to_uint8(book.snap(to_model(sprite[None]), 16, rows=32)[0])[0], sprite)


def test_the_shipped_book_leaves_real_emulator_frames_nearly_untouched(real_episodes):
    """Real 1-1 and 1-2 frames are what the book was counted on: snapping them must not repaint the game.
    (A bound, not zero: the book keeps only cells seen 20 times, and sprites near a book cell are snapped.)"""
    model, _ = WorldModel.load(ROOT / "checkpoints")
    assert model.tiles is not None
    frames = real_frames(real_episodes)
    x = to_model(frames)
    cells = frame_cells(palette_index(x).numpy().astype(np.uint8))
    assert model.tiles.known(cells).mean() > 0.95                                  # the book holds the game
    out, _ = model.tiles.snap(x, 16)                   # the limit the docs suggest (--tile-snap 16)
    assert (out != x).any(1).float().mean() < 0.005


def test_game_tile_share_counts_the_games_cells_and_not_streaks_blur_or_garbled_digits(real_episodes):
    """The playability figure for what a player sees of the background: the shipped book on real emulator
    frames, the same frames with their bricks smeared into streaks, blurred, and with the HUD garbled."""
    model, _ = WorldModel.load(ROOT / "checkpoints")
    frames = real_frames(real_episodes)
    hud, field = model.tiles.game_tile_share(frames, 32)
    assert hud.shape == field.shape == (len(frames),)
    assert hud.mean() > 0.95 and field.mean() > 0.95                      # the game's own frames
    streaks = frames.copy()
    streaks[:, 32::2, 3:] = frames[:, 32::2, :-3]                         # every other row dragged 3 px along
    assert model.tiles.game_tile_share(streaks, 32)[1].mean() < field.mean() - 0.1     # sky stays sky
    blurred = frames.reshape(len(frames), 60, 4, 64, 4, 3).mean((2, 4)).round().astype(np.uint8)
    blurred = blurred.repeat(4, 1).repeat(4, 2)                           # blends are no palette colour
    assert model.tiles.game_tile_share(blurred, 32)[1].mean() < field.mean() - 0.1
    garbled = frames.copy()
    garbled[:, 16:32] = garbled[:, 16:32, ::-1]                           # the HUD's two text rows mirrored
    g_hud, g_field = model.tiles.game_tile_share(garbled, 32)
    assert g_hud.mean() < hud.mean() - 0.2 and np.array_equal(g_field, field)


def hud_book_of(frames: np.ndarray, min_count: int = 1) -> TileBook:
    """book_of, with the HUD table the script builds from the same frames."""
    cells = frame_cells(palette_index(to_model(frames)).numpy().astype(np.uint8))[:, :128]   # (T, 4*32, 64)
    hashes = cell_hashes(cells)
    distinct, first = np.unique(hashes, return_index=True)
    tiles = cells.reshape(-1, 64)[first]
    counts = (hashes[:, :, None] == distinct[None, None]).sum(0)                            # (128, M)
    hud_tiles, allowed = hud_table(tiles, counts, (4, 32), min_count)
    book = book_of(frames)
    return TileBook(book.tiles, book.counts, torch.as_tensor(hud_tiles), torch.as_tensor(allowed))


def test_hud_table_keeps_each_label_to_its_glyph_and_lets_digits_go_with_digits(real_episodes):
    frames = real_frames(real_episodes)
    book = hud_book_of(frames)
    allowed, tiles = book.hud_allowed.numpy(), book.hud_tiles.numpy()
    glyphs = lambda r, c: {i for i in np.flatnonzero(allowed[r, c]) if len(np.unique(tiles[i])) > 1}   # noqa: E731
    one_per_background = lambda g: len(g) == len({int(tiles[i][63]) for i in g}) >= 1   # noqa: E731 (the font leaves row 8 blank)
    assert one_per_background(glyphs(2, 18)) and one_per_background(glyphs(3, 12))   # the W of WORLD, the coin's x
    assert glyphs(2, 18) != glyphs(2, 19) and glyphs(3, 12).isdisjoint(glyphs(3, 28))
    clock = glyphs(3, 26) | glyphs(3, 27) | glyphs(3, 28)
    assert len(clock) >= 4 and clock <= glyphs(3, 3) == glyphs(3, 28)    # score and clock share the 0: one set
    assert all(allowed[r, c].any() for r in range(4) for c in range(32))  # blank cells may stay blank
    with pytest.raises(ValueError, match="HUD table"):
        TileBook(book.tiles, book.counts, book.hud_tiles, book.hud_allowed[:, :, :-1])


def test_a_blank_passes_to_no_hud_cell_that_never_showed_one(real_episodes):
    """Digits go with digits, but the clock's blank (between lives) must not let the coin counter's digit
    go blank: a cell may show a blank only if it showed one itself."""
    frames = real_frames(real_episodes)
    cells = frame_cells(palette_index(to_model(frames[:1])).numpy().astype(np.uint8))[0]
    zero, one, blank = cells[3 * 32 + 3], cells[3 * 32 + 26], cells[0]     # a score 0, a clock digit, the sky
    assert len({zero.tobytes(), one.tobytes(), blank.tobytes()}) == 3 and len(np.unique(blank)) == 1
    tiles, allowed = hud_table(np.stack([zero, one, blank]), np.array([[30, 30, 30], [30, 0, 0]]), (1, 2), 20)
    shows = lambda c: {t.tobytes() for t in tiles[allowed[0, c]]}             # noqa: E731
    assert shows(0) == {zero.tobytes(), one.tobytes(), blank.tobytes()}
    assert shows(1) == {zero.tobytes(), one.tobytes()}                           # the digit linked, not the blank
    shipped = WorldModel.load(ROOT / "checkpoints")[0].tiles
    uniform = (shipped.hud_tiles.numpy() == shipped.hud_tiles.numpy()[:, :1]).all(1)
    assert not (shipped.hud_allowed.numpy()[3, 13:15] & uniform).any()          # the coin digits never blank


def test_the_hud_snap_brings_a_faded_x_back_where_the_whole_book_would_blank_it(real_episodes, tmp_path):
    """The coin's "x" with half its white pixels faded to the background is nearer the blank cell than
    the "x": the whole book blanks it (and the dream copies the blank on), the HUD table restores it.
    The table survives the checkpoint's save and load."""
    frames = real_frames(real_episodes)
    real = frames[3]
    faded = real.copy()
    cell = faded[24:32, 96:104]
    ink = np.argwhere((cell != cell[0, 0]).any(-1))
    for y, x in ink[::2]:
        cell[y, x] = cell[0, 0]
    x = to_model(faded[None])
    old, _ = book_of(frames).snap(x, 16, rows=32)
    assert (to_uint8(old)[0, 24:32, 96:104] == real[0, 0]).all()            # blanked
    book = hud_book_of(frames)
    new, changed = book.snap(x, 16, rows=32)
    assert np.array_equal(to_uint8(new)[0], real) and changed[0] == pytest.approx(1 / (30 * 32))
    whole, changed = book.snap(x, 16)                                      # the whole frame: the HUD by its table
    assert np.array_equal(to_uint8(whole)[0], real) and changed[0] == pytest.approx(1 / (30 * 32))
    model = WorldModel.load(ROOT / "checkpoints")[0]
    model.tiles = book
    model.save(tmp_path / "ck")
    again = WorldModel.load(tmp_path / "ck")[0].tiles
    assert again.hud_table and np.array_equal(to_uint8(again.snap(x, 16, rows=32)[0])[0], real)


def test_hud_only_keeps_the_books_tiles_and_counts_the_hud_table_again(tiles_checkpoint, tiny_checkpoint,
                                                                       real_episodes, tmp_path):
    out = tmp_path / "hud"
    done = build_tile_book(["--data", str(real_episodes), "--checkpoint", str(tiles_checkpoint), "--out", str(out),
                            "--hud-only", "--every", "4", "--hud-min-count", "1000"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = WorldModel.load(tiles_checkpoint)[0].tiles, WorldModel.load(out)[0].tiles
    assert torch.equal(before.tiles, after.tiles) and torch.equal(before.counts, after.counts)
    report = json.loads((out / "tiles_report.json").read_text())
    assert report["hud_min_count"] == 1000 and report["tiles"] == len(after)      # the book's own figures kept
    assert after.hud_allowed.sum(2).max() < before.hud_allowed.sum(2).max()        # fewer tiles seen 1000 times
    done = build_tile_book(["--data", str(real_episodes), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x"),
                            "--hud-only"], cwd=tmp_path)
    assert done.returncode != 0 and "no tile book" in done.stderr and "Traceback" not in done.stderr


def test_a_static_hud_cell_keeps_the_glyph_of_the_frame_before(tiles_checkpoint, real_episodes):
    """The script marks the cells whose glyph never changes within an episode (the world number, the
    "x"), not the clock's. Given the frame before, a world number drawn as another digit, or as garbage
    far from every tile, comes back as the one the last frame showed; without it, the digit stays."""
    book = WorldModel.load(tiles_checkpoint)[0].tiles
    static = book.hud_static.numpy()
    assert static[3, 19] and static[3, 12] and static[2, 18] and not static[3, 28]
    path = next(p for p in list_episodes(real_episodes) if "1-2" in p.name)
    real = read_episode(path).frames[20]                              # "WORLD 1-2"
    last = to_model(real[None])
    other = real.copy()
    other[24:32, 152:160] = real[24:32, 168:176]                      # the world number drawn as the level's "2"
    assert not np.array_equal(other, real)
    kept, _ = book.snap(to_model(other[None]), 16, rows=32)
    assert np.array_equal(to_uint8(kept)[0], other)                   # a digit may show any digit
    back, _ = book.snap(to_model(other[None]), 16, rows=32, last=last)
    assert np.array_equal(to_uint8(back)[0], real)
    garbage = real.copy()
    garbage[24:32, 152:160] = np.array(NES_PALETTE, np.uint8)[np.random.default_rng(2).integers(len(NES_PALETTE), size=(8, 8))]
    assert np.array_equal(to_uint8(book.snap(to_model(garbage[None]), 16, rows=32)[0])[0], garbage)
    glyph = lambda f: ink_masks(frame_cells(palette_index(to_model(f[None])).numpy().astype(np.uint8)))[0]   # noqa: E731
    held = to_uint8(book.snap(to_model(garbage[None]), 16, rows=32, last=last)[0])[0]
    assert np.array_equal(glyph(held), glyph(real))                  # the "1" again, in the colours nearest the garbage
    whole = to_uint8(book.snap(to_model(garbage[None]), 16, last=last)[0])[0]      # the whole-frame snap holds it too
    assert np.array_equal(glyph(whole)[:128], glyph(real)[:128])
