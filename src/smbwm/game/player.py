"""The player's loop: read input every window frame, run the game step in a worker thread.

Generating a dream frame can take longer than a window frame, so `Session.reset/step` run on a
single worker thread (torch releases the GIL while it computes) and the loop only polls for the
result: the window keeps drawing, keys keep being read, and the header shows the FPS really reached.
The game is paced at `fps` steps per second and never catches up in bursts after a slow step.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from smbwm.game.keymap import KeyMap, ResolvedKeyMap
from smbwm.game.render import Hud, Renderer
from smbwm.game.session import Session, Shown

WINDOW_HZ = 60          # event polling / redraw rate of the window
REDRAW_S = 0.25         # redraw at least this often (the FPS text) even when nothing arrives


@dataclass
class FpsMeter:
    """Game steps shown per second over the last `window` steps."""
    window: int = 16
    stamps: deque = field(default_factory=lambda: deque(maxlen=16))

    def tick(self, t: float) -> None:
        self.stamps.append(t)

    def reset(self) -> None:
        self.stamps.clear()

    @property
    def fps(self) -> float:
        if len(self.stamps) < 2:
            return 0.0
        return (len(self.stamps) - 1) / max(self.stamps[-1] - self.stamps[0], 1e-9)


@dataclass
class RunLog:
    """What a run produced: the frames shown per side and per-step timings (headless output)."""
    keep_frames: bool = False
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)
    actions: list[int] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)          # worker time of each step
    timings: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    resets: int = 0
    started: float = 0.0
    finished: float = 0.0
    cpu_s: float = 0.0          # process CPU time of the loop (all threads): load-independent cost

    reset_s: float = 0.0        # time spent in resets (model/emulator start, replays): not play
    ticks: int = 0              # loop iterations: input polls (the window stays live while generating)
    ends: dict[str, int] = field(default_factory=dict)   # episodes ended, by the dream's end_reason (or "other")

    def add(self, shown: Shown, worker_ms: float) -> None:
        if shown.action is None:
            self.resets += 1
            self.reset_s += worker_ms / 1000
            return
        self.steps += 1
        if shown.ended:
            reason = (shown.infos or {}).get("dream", {}).get("end_reason") or "other"
            self.ends[reason] = self.ends.get(reason, 0) + 1
        self.actions.append(shown.action)
        self.step_ms.append(worker_ms)
        for k, v in shown.timings_ms.items():
            self.timings.setdefault(k, []).append(v)
        if self.keep_frames:
            for side, img in shown.images.items():
                self.frames.setdefault(side, []).append(np.asarray(img, np.uint8).copy())


class Player:
    """Drives a Session from the keyboard (`actions=None`) or from an action iterator (headless)."""

    def __init__(self, session: Session, renderer: Renderer, fps: float, keymap: KeyMap | None = None,
                 sampler: str = ""):
        import pygame
        self.pg = pygame
        self.session, self.renderer = session, renderer
        self.period = 1.0 / fps
        self.keys: ResolvedKeyMap = (keymap or KeyMap()).resolve(pygame.key.key_code)
        self.hud = Hud(target_fps=fps, denoising_steps=session.denoising_steps, sampler=sampler if session.dream else "")
        self.meter = FpsMeter()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="game-step")
        self.job: Future | None = None
        self.job_started = 0.0
        self.latched = 0            # buttons pressed and released since the last step
        self.pending_reset: int | None = 0   # advance for the next reset (0: same start); starts with one
        self.paused = False
        self.step_once = False
        self.running = True

    # --- input -----------------------------------------------------------------------------------
    def _handle_events(self) -> bool:
        """Process window events; True if anything visible changed."""
        pg, changed = self.pg, False
        for ev in pg.event.get():
            if ev.type == pg.QUIT:
                self.running = False
            elif ev.type == pg.KEYDOWN:
                control = self.keys.control_for_key(ev.key)
                if control == "quit":
                    self.running = False
                elif control == "reset":
                    self.pending_reset = 0
                elif control == "switch":
                    self.pending_reset = 1
                elif control == "pause":
                    self.paused = not self.paused
                    self.meter.reset()
                elif control == "step" and self.paused:
                    self.step_once = True
                self.latched |= self.keys.bit_for_key(ev.key)
                changed = True
            elif ev.type == pg.KEYUP:
                changed = True
        return changed

    def _held_byte(self) -> int:
        pressed = self.pg.key.get_pressed()
        return self.keys.byte_from_held(lambda code: bool(pressed[code]))

    # --- worker ----------------------------------------------------------------------------------
    def _submit(self, fn: Callable, *args) -> None:
        self.job_started = time.perf_counter()
        self.job = self.pool.submit(fn, *args)

    def _collect(self, log: RunLog) -> Shown | None:
        if self.job is None or not self.job.done():
            return None
        job, self.job = self.job, None
        shown: Shown = job.result()      # re-raises the worker's exception here, in the main thread
        log.add(shown, (time.perf_counter() - self.job_started) * 1000)
        for side, img in shown.images.items():
            self.renderer.set_frame(side, img)
        self.hud.step = shown.step
        self.hud.gen_ms = shown.timings_ms
        self.hud.note = shown.note
        self.hud.start_label = self.session.start.label
        if shown.action is None:
            self.meter.reset()
        else:
            self.meter.tick(time.perf_counter())
        if shown.ended:
            self.pending_reset = 0       # death, flag or time limit: start again from the same start
        return shown

    # --- loop ------------------------------------------------------------------------------------
    def run(self, actions: Iterator[int] | None = None, max_steps: int | None = None, log: RunLog | None = None) -> RunLog:
        """Play until Esc/close (keyboard) or until `max_steps` steps were shown (scripted actions,
        unpaced: as fast as the pipeline goes)."""
        log = log or RunLog()
        paced = actions is None
        clock = self.pg.time.Clock()
        next_due = time.perf_counter()
        last_draw = 0.0
        log.started, cpu0 = time.perf_counter(), time.process_time()
        try:
            while self.running:
                log.ticks += 1
                dirty = self._handle_events()
                dirty = self._collect(log) is not None or dirty
                now = time.perf_counter()
                more = max_steps is None or log.steps < max_steps
                if self.job is None and more:
                    if self.pending_reset is not None:
                        advance, self.pending_reset = self.pending_reset, None
                        self._submit(self.session.reset, advance)
                        next_due = now
                    elif (self.paused and self.step_once) or (not self.paused and (not paced or now >= next_due)):
                        byte = next(actions) if actions is not None else self._held_byte() | self.latched
                        self.latched, self.step_once = 0, False
                        self._submit(self.session.step, byte)
                        # Pace from the due time, but never owe more than one step after a slow one.
                        next_due = max(next_due + self.period, now)
                self.hud.paused, self.hud.busy = self.paused, self.job is not None
                self.hud.fps = self.meter.fps
                self.hud.buttons = self._held_byte() | self.latched if paced else (log.actions[-1] if log.actions else 0)
                if dirty or (paced and now - last_draw > REDRAW_S):
                    self.renderer.draw(self.hud)
                    last_draw = now
                if not more and self.job is None:
                    break
                if paced:
                    clock.tick(WINDOW_HZ)
                elif self.job is not None:
                    wait([self.job], timeout=1.0 / WINDOW_HZ)
        finally:
            log.finished, log.cpu_s = time.perf_counter(), time.process_time() - cpu0
            if self.job is not None:     # torch cannot be interrupted: let the step finish first
                try:
                    self.job.result()
                except Exception:  # noqa: BLE001 - already quitting; the session still closes cleanly
                    pass
            self.pool.shutdown(wait=True)
        return log
