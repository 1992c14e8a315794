"""Collection: agents play environments and episodes are written (above agents, envs and data)."""
