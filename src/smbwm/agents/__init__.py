"""Data sources: agents that map (observation, info) to a NES button byte."""
