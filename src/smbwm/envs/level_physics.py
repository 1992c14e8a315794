"""Pure-python Super Mario Bros physics for MarioGPT levels (small Mario, goombas, blocks).

Constants are the NES game's (SMB disassembly / smbpedia), in pixels per frame: walk max 1.5, run
max 2.5 (B), acceleration 0x98/0xE4 per 4096, release friction 0xD0, skid 0x1A0; a jump starts at
-4 px/f (-5 when faster than 2.3125) with the weak "A held" gravity while rising and the strong one
otherwise (three speed classes), falls capped at 4 px/f; goombas walk at 0.5 px/f. Positions are
level pixels: (x, y) is the top-left of a 16x16 sprite box, row r spans y 16r..16r+16.
The whole state is a few lists and one bytearray, so `clone()` is cheap for planners.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from smbwm.actions import BUTTON_BITS

TILE = 16
SOLID_TILES = "XS?QU<>[]Bb"   # U: a question block after it was bumped
_SOLID = bytes(1 if chr(i) in SOLID_TILES else 0 for i in range(256))
_Q, _U, _O, _SKY = ord("?"), ord("U"), ord("o"), ord("-")

WALK_MAX, RUN_MAX = 1.5, 2.5
WALK_ACC, RUN_ACC, RELEASE_DEC, SKID_DEC = 0x98 / 4096, 0xE4 / 4096, 0xD0 / 4096, 0x1A0 / 4096
MIN_WALK = 0x130 / 4096
# (speed below which it applies, initial vy, gravity while A held and rising, gravity otherwise)
JUMP_CLASSES = ((1.0, -4.0, 0x200 / 4096, 0x700 / 4096), (2.3125, -4.0, 0x1E0 / 4096, 0x600 / 4096),
                (math.inf, -5.0, 0x280 / 4096, 0x900 / 4096))
MAX_FALL = 4.0
STOMP_VY = -4.0
GOOMBA_SPEED = 0.5
FRAMES_PER_TICK = 24          # the game clock counts down one unit every 24 frames
SAFE_START_COLS = 6
CAMERA_LEAD = 112             # the camera follows once Mario passes this screen x
SCREEN_W = 256
START_TIME = 400
# Mario's and a goomba's collision boxes inside their 16x16 sprite: (left, right, top, bottom)
MARIO_BOX = (3, 13, 2, 16)
GOOMBA_BOX = (2, 14, 4, 16)

RIGHT, LEFT, DOWN, UP, B, A = (BUTTON_BITS[b] for b in ("right", "left", "down", "up", "B", "A"))


@dataclass
class Mario:
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    on_ground: bool = True
    facing: int = 1
    a_was_held: bool = False
    hold_g: float = JUMP_CLASSES[0][2]
    fall_g: float = JUMP_CLASSES[0][3]
    air_max: float = WALK_MAX
    rising_with_a: bool = False
    walk_phase: float = 0.0


class LevelState:
    """Everything that changes while playing; `clone()` returns an independent copy."""
    __slots__ = ("width", "tiles", "mario", "enemies", "camera_x", "frame", "time", "coins", "score",
                 "dead", "death_cause", "flag", "pole_x", "bumps")

    def __init__(self, width: int, tiles: bytearray, mario: Mario, enemies: list[list[float]], pole_x: float):
        self.width = width
        self.tiles = tiles                     # row-major, 14 x width character codes
        self.mario = mario
        self.enemies = enemies                 # [x, y, vx, vy, state(0 asleep,1 walking,2 flat,3 gone), timer]
        self.camera_x = 0
        self.frame = 0
        self.time = START_TIME
        self.coins = 0
        self.score = 0
        self.dead = False
        self.death_cause = ""
        self.flag = False
        self.pole_x = pole_x
        self.bumps: list[list[int]] = []       # [row, col, frames left] of blocks hit from below

    def clone(self) -> LevelState:
        s = LevelState.__new__(LevelState)
        s.width, s.tiles, s.pole_x = self.width, bytearray(self.tiles), self.pole_x
        m = self.mario
        s.mario = Mario(m.x, m.y, m.vx, m.vy, m.on_ground, m.facing, m.a_was_held, m.hold_g, m.fall_g,
                        m.air_max, m.rising_with_a, m.walk_phase)
        s.enemies = [e[:] for e in self.enemies]
        s.bumps = [b[:] for b in self.bumps]
        s.camera_x, s.frame, s.time, s.coins, s.score = self.camera_x, self.frame, self.time, self.coins, self.score
        s.dead, s.death_cause, s.flag = self.dead, self.death_cause, self.flag
        return s

    @property
    def over(self) -> bool:
        return self.dead or self.flag

    # --- tiles ------------------------------------------------------------------------------------
    def tile(self, r: int, c: int) -> int:
        if c < 0:
            return ord("X")            # the level's left edge is a wall
        if r < 0 or r >= 14 or c >= self.width:
            return _SKY
        return self.tiles[r * self.width + c]

    def solid(self, r: int, c: int) -> bool:
        return _SOLID[self.tile(r, c)] == 1

    def box_hits(self, left: float, right: float, top: float, bottom: float) -> list[tuple[int, int]]:
        """Solid tiles overlapping the box [left, right) x [top, bottom)."""
        c0, c1 = int(left // TILE), int((right - 1e-6) // TILE)
        r0, r1 = int(top // TILE), int((bottom - 1e-6) // TILE)
        return [(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1) if self.solid(r, c)]


def new_state(rows: list[str]) -> LevelState:
    """The start of a level: Mario on the ground near the left edge, goombas where 'E' stands."""
    width = len(rows[0])
    tiles = bytearray("".join(rows).replace("E", "-").replace("x", "-").encode())
    # no goomba in the first 6 columns: the game never starts Mario next to one (generated levels may)
    enemies = [[float(c * TILE), float(r * TILE), -GOOMBA_SPEED, 0.0, 0, 0]
               for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "E" and c >= SAFE_START_COLS]
    pole_col = max(0, width - 3)
    state = LevelState(width, tiles, Mario(0.0, 0.0), enemies, pole_col * TILE + 8.0)
    state.mario = Mario(*_spawn_point(state, 40.0))
    return state


def _spawn_point(state: LevelState, x: float) -> tuple[float, float]:
    """Stand on the lowest free surface under x (or the first column further right that has one)."""
    for cx in [x] + [float(c * TILE) for c in range(int(x // TILE) + 1, state.width)]:
        c0, c1 = int((cx + MARIO_BOX[0]) // TILE), int((cx + MARIO_BOX[1] - 1) // TILE)
        for r in range(13, 0, -1):
            if (state.solid(r, c0) or state.solid(r, c1)) and not state.box_hits(
                    cx + MARIO_BOX[0], cx + MARIO_BOX[1], r * TILE - 16 + MARIO_BOX[2], r * TILE):
                return cx, float(r * TILE - 16)
    return x, 0.0


def step_frame(s: LevelState, buttons: int) -> float:
    """Advance one NES frame with the controller byte held; return the frame's reward."""
    if s.over:
        return 0.0
    m = s.mario
    x_before, time_before = m.x, s.time
    _move_mario_x(s, m, buttons)
    _move_mario_y(s, m, buttons)
    _collect_coins(s, m)
    _update_enemies(s)
    _mario_vs_enemies(s, m, buttons)
    s.frame += 1
    if s.frame % FRAMES_PER_TICK == 0:
        s.time -= 1
        if s.time <= 0 and not s.dead:
            s.dead, s.death_cause = True, "time"
    if m.y > 14 * TILE and not s.dead:
        s.dead, s.death_cause = True, "gap"
    if not s.dead and m.x + MARIO_BOX[1] >= s.pole_x:
        s.flag = True
    s.camera_x = max(s.camera_x, min(int(m.x) - CAMERA_LEAD, s.width * TILE - SCREEN_W))
    s.camera_x = max(0, s.camera_x)
    for b in s.bumps:
        b[2] -= 1
    s.bumps = [b for b in s.bumps if b[2] > 0]
    # the emulator env's reward: progress, clock penalty, death penalty, clipped to [-15, 15]
    reward = max(-5.0, min(5.0, m.x - x_before)) + min(0, s.time - time_before) - (25.0 if s.dead else 0.0)
    return max(-15.0, min(15.0, reward))


def _move_mario_x(s: LevelState, m: Mario, buttons: int) -> None:
    d = (1 if buttons & RIGHT else 0) - (1 if buttons & LEFT else 0)
    running = bool(buttons & B)
    if m.on_ground:
        top = RUN_MAX if running else WALK_MAX
        if d and m.vx * d >= 0:
            m.facing = d
            speed = abs(m.vx)
            if speed < MIN_WALK:
                speed = MIN_WALK
            elif speed <= top:
                speed = min(top, speed + (RUN_ACC if running else WALK_ACC))
            else:                       # B released at run speed: slow down to walking
                speed = max(top, speed - RELEASE_DEC)
            m.vx = d * speed
        elif d:                         # pushing against the motion: skid
            m.vx += d * SKID_DEC
            if m.vx * d > 0:
                m.vx = d * MIN_WALK
                m.facing = d
        else:
            m.vx = math.copysign(max(0.0, abs(m.vx) - RELEASE_DEC), m.vx)
    elif d:
        if m.vx * d >= 0:
            m.vx = d * min(max(m.air_max, abs(m.vx)), abs(m.vx) + WALK_ACC)
        else:
            m.vx += d * RELEASE_DEC
    m.x += m.vx
    m.walk_phase += abs(m.vx)
    left, right, top_, bottom = MARIO_BOX
    hits = s.box_hits(m.x + left, m.x + right, m.y + top_, m.y + bottom)
    if hits:
        if m.vx > 0:
            m.x = min(c for _, c in hits) * TILE - right
        elif m.vx < 0:
            m.x = (max(c for _, c in hits) + 1) * TILE - left
        m.vx = 0.0
    if m.x < s.camera_x:                # the screen's left edge is a wall (no scrolling back)
        m.x, m.vx = float(s.camera_x), max(0.0, m.vx)
    limit = s.width * TILE - 16
    if m.x > limit:
        m.x, m.vx = float(limit), min(0.0, m.vx)


def _move_mario_y(s: LevelState, m: Mario, buttons: int) -> None:
    a_held = bool(buttons & A)
    jumped = a_held and not m.a_was_held and m.on_ground
    if jumped:
        speed = abs(m.vx)
        for limit, vy0, hold_g, fall_g in JUMP_CLASSES:
            if speed < limit:
                m.vy, m.hold_g, m.fall_g = vy0, hold_g, fall_g
                break
        m.on_ground, m.rising_with_a = False, True
        m.air_max = max(WALK_MAX, speed)
    m.a_was_held = a_held
    if not a_held or m.vy >= 0:
        m.rising_with_a = False
    if not jumped:                      # the jump's first frame moves at the full take-off speed
        m.vy = min(MAX_FALL, m.vy + (m.hold_g if m.rising_with_a else m.fall_g))
    m.y += m.vy
    left, right, top, bottom = MARIO_BOX
    hits = s.box_hits(m.x + left, m.x + right, m.y + top, m.y + bottom)
    was_on_ground, m.on_ground = m.on_ground, False
    if not hits:
        if was_on_ground:
            m.air_max = max(WALK_MAX, abs(m.vx))
        return
    if m.vy > 0:
        m.y = min(r for r, _ in hits) * TILE - bottom
        m.vy, m.on_ground = 0.0, True
    elif m.vy < 0:
        row = max(r for r, _ in hits)
        m.y = (row + 1) * TILE - top
        m.vy, m.rising_with_a = 0.0, False
        centre = int((m.x + 8) // TILE)
        cols = [c for r, c in hits if r == row]
        _bump(s, row, centre if centre in cols else cols[0])


def _bump(s: LevelState, r: int, c: int) -> None:
    i = r * s.width + c
    if s.tiles[i] in (_Q, ord("Q")):
        s.tiles[i] = _U
        s.coins += 1
        s.score += 200
    if s.tiles[i] in (_U, ord("S")) and not any(b[0] == r and b[1] == c for b in s.bumps):
        s.bumps.append([r, c, 8])
    for e in s.enemies:                 # a goomba standing on a bumped block is knocked out
        if e[4] == 1 and abs(e[0] - c * TILE) < TILE and abs(e[1] + 16 - r * TILE) < 2:
            e[4], e[5] = 3, 0
            s.score += 100


def _collect_coins(s: LevelState, m: Mario) -> None:
    left, right, top, bottom = MARIO_BOX
    for r in range(int((m.y + top) // TILE), int((m.y + bottom - 1e-6) // TILE) + 1):
        for c in range(int((m.x + left) // TILE), int((m.x + right - 1e-6) // TILE) + 1):
            if 0 <= r < 14 and 0 <= c < s.width and s.tiles[r * s.width + c] == _O:
                s.tiles[r * s.width + c] = _SKY
                s.coins += 1
                s.score += 200


def _update_enemies(s: LevelState) -> None:
    wake_x = s.camera_x + SCREEN_W + TILE
    left, right, top, bottom = GOOMBA_BOX
    for e in s.enemies:
        if e[4] == 0:
            if e[0] < wake_x:
                e[4] = 1
            continue
        if e[4] == 2:
            e[5] -= 1
            if e[5] <= 0:
                e[4] = 3
            continue
        if e[4] != 1:
            continue
        e[0] += e[2]
        if s.box_hits(e[0] + left, e[0] + right, e[1] + top, e[1] + bottom - 1):
            e[0] -= e[2]
            e[2] = -e[2]
        e[3] = min(MAX_FALL, e[3] + JUMP_CLASSES[0][3])
        e[1] += e[3]
        hits = s.box_hits(e[0] + left, e[0] + right, e[1] + top, e[1] + bottom)
        if hits and e[3] > 0:
            e[1] = min(r for r, _ in hits) * TILE - bottom
            e[3] = 0.0
        if e[1] > 14 * TILE or e[0] < s.camera_x - 4 * TILE:
            e[4] = 3
    walking = [e for e in s.enemies if e[4] == 1]
    for i, a in enumerate(walking):     # goombas bounce off each other
        for b in walking[i + 1:]:
            if abs(a[0] - b[0]) < 12 and abs(a[1] - b[1]) < 12 and (b[0] - a[0]) * (a[2] - b[2]) > 0:
                a[2], b[2] = -a[2], -b[2]


def _mario_vs_enemies(s: LevelState, m: Mario, buttons: int) -> None:
    if s.dead:
        return
    ml, mr, mt, mb = m.x + MARIO_BOX[0], m.x + MARIO_BOX[1], m.y + MARIO_BOX[2], m.y + MARIO_BOX[3]
    for e in s.enemies:
        if e[4] != 1:
            continue
        el, er, et, eb = e[0] + GOOMBA_BOX[0], e[0] + GOOMBA_BOX[1], e[1] + GOOMBA_BOX[2], e[1] + GOOMBA_BOX[3]
        if mr <= el or ml >= er or mb <= et or mt >= eb:
            continue
        if m.vy > 0 and mb <= et + 8:   # falling onto its head: stomp and bounce
            e[4], e[5] = 2, 30
            s.score += 100
            m.vy, m.on_ground = STOMP_VY, False
            m.rising_with_a = bool(buttons & A)
        else:
            s.dead, s.death_cause = True, "enemy"
            return
