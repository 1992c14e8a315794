"""The data tools behind `python src/dataset.py <tool>`: split, cache, import, spawn. Each module has a
`main(argv) -> exit status` with its own flags (`--help`)."""
