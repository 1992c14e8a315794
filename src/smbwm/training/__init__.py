"""Training the world model: the Trainer (exact resume, DDP) and what a run leaves behind (training.log)."""
