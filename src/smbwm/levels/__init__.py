"""MarioGPT levels: text representation, corpus, prompts and the text-to-level generator."""
from smbwm.levels.level import HEIGHT, SOLID, TILES, Level, LevelError, load_level, parse_level

__all__ = ["HEIGHT", "SOLID", "TILES", "Level", "LevelError", "load_level", "parse_level"]
