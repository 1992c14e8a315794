"""smbwm: the library behind the entry points in src/ (models, envs, agents, data, training, play)."""
