"""Keyboard -> NES controller byte, and the player's control keys.

Game buttons are read from the held-key state every frame (combinations such as right+run+jump work
because each button has a key of its own). A key tapped and released between two game steps is
latched, so a quick jump tap is never lost when the game runs at 15 steps/s and the window at 60.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from smbwm import actions as A

# pygame key names (pygame.key.key_code) for each NES button.
DEFAULT_BUTTON_KEYS: dict[str, tuple[str, ...]] = {
    "right": ("right", "d"),
    "left": ("left", "a"),
    "down": ("down", "s"),
    "up": ("up", "w"),
    "A": ("z", "k", "space"),                        # jump
    "B": ("x", "j", "left shift", "right shift"),    # run / fire
}
DEFAULT_CONTROL_KEYS: dict[str, tuple[str, ...]] = {
    "reset": ("return", "enter"),
    "pause": ("p",),
    "step": (".",),
    "switch": ("tab", "n"),
    "quit": ("escape",),
}
HELP_LINE = ("arrows/WASD move   Z/K/Space jump   X/J/Shift run   Enter reset   P pause   "
             ". step   Tab/N next spawn   Esc quit")


@dataclass
class KeyMap:
    buttons: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_BUTTON_KEYS))
    controls: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CONTROL_KEYS))

    def resolve(self, key_code: Callable[[str], int]) -> "ResolvedKeyMap":
        """Bind key names to key codes (pygame.key.key_code); unknown names are a config error."""
        def codes(names: Iterable[str]) -> tuple[int, ...]:
            out = []
            for n in names:
                try:
                    out.append(int(key_code(n)))
                except ValueError:
                    raise ValueError(f"unknown key name {n!r} in the key map") from None
            return tuple(out)
        return ResolvedKeyMap(
            buttons={A.BUTTON_BITS[b]: codes(ks) for b, ks in self.buttons.items()},
            controls={c: codes(ks) for c, ks in self.controls.items()},
        )


@dataclass
class ResolvedKeyMap:
    buttons: dict[int, tuple[int, ...]]      # NES bit -> key codes
    controls: dict[str, tuple[int, ...]]     # control name -> key codes

    def byte_from_held(self, is_held: Callable[[int], bool]) -> int:
        """The controller byte for the keys held now. Opposite directions cancel (a real d-pad
        cannot press both, and the game glitches when it sees both)."""
        byte = 0
        for bit, codes in self.buttons.items():
            if any(is_held(c) for c in codes):
                byte |= bit
        for a, b in ((A.BUTTON_BITS["left"], A.BUTTON_BITS["right"]), (A.BUTTON_BITS["up"], A.BUTTON_BITS["down"])):
            if byte & a and byte & b:
                byte &= ~(a | b)
        return byte

    def bit_for_key(self, code: int) -> int:
        return next((bit for bit, codes in self.buttons.items() if code in codes), 0)

    def control_for_key(self, code: int) -> str | None:
        return next((name for name, codes in self.controls.items() if code in codes), None)
