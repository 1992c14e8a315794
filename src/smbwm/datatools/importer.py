"""Import recordings made by other projects into our episode format (one HDF5 file per episode).

    python src/dataset.py import --from diamond_supermario SRC_DIR OUT_DIR
    python src/dataset.py import --from diamond_supermario mario_episode_data_3.hdf5 OUT_DIR --channel-order rgb

SRC may be one file or a directory (searched recursively for *.hdf5 / *.h5). Each source file becomes
one or more episodes (their files continue recording across deaths; we cut there). Re-running skips
episodes already imported.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from smbwm.data.episode import write_episode
from smbwm.data.import_diamond import DiamondFormatError, DiamondImportConfig, read_diamond_file
from smbwm.stages import parse_stage

FORMATS = ("diamond_supermario",)


def source_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if src.is_dir():
        return sorted(p for p in src.rglob("*") if p.suffix in (".hdf5", ".h5") and p.is_file())
    raise DiamondFormatError(f"{src}: no such file or directory")


def import_diamond(src: Path, out: Path, cfg: DiamondImportConfig, compression: str = "lzf") -> dict[str, int]:
    files = source_files(src)
    if not files:
        raise DiamondFormatError(f"{src}: no *.hdf5 / *.h5 files")
    stats = {"files": 0, "episodes": 0, "steps": 0, "skipped": 0, "bgr_files": 0}
    for p in tqdm(files, desc="import diamond_supermario", unit="file", dynamic_ncols=True):
        stem = p.relative_to(src).with_suffix("").as_posix().replace("/", "_") if src.is_dir() else p.stem
        for ep in read_diamond_file(p, cfg):
            target = out / f"diamond_{stem}_seg{ep.attrs['segment']:02d}.hdf5"
            stats["bgr_files"] += int(ep.attrs["channel_order_in"] == "bgr" and ep.attrs["segment"] == 0)
            if target.exists():
                stats["skipped"] += 1
                continue
            write_episode(target, ep, compression=compression)
            stats["episodes"] += 1
            stats["steps"] += len(ep)
        stats["files"] += 1
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python src/dataset.py import", description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="fmt", required=True, choices=FORMATS, help="layout of the source files")
    ap.add_argument("src", type=Path, help="a source file or a directory of them")
    ap.add_argument("out", type=Path, help="output directory of episode files")
    ap.add_argument("--level", default="1-1", help="level the recordings show (DIAMOND_SuperMario: 1-1)")
    ap.add_argument("--channel-order", choices=("auto", "rgb", "bgr"), default="auto",
                    help="colour order of the source frames; auto checks the sky colour")
    ap.add_argument("--compression", choices=("lzf", "gzip"), default="lzf")
    a = ap.parse_args(argv)
    try:
        parse_stage(a.level)
        cfg = DiamondImportConfig(level=a.level, channel_order=a.channel_order)
        stats = import_diamond(a.src, a.out, cfg, a.compression)
    except (DiamondFormatError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {stats['episodes']} episodes ({stats['steps']} steps) imported from {stats['files']} files, "
          f"{stats['skipped']} already there" + (f"; {stats['bgr_files']} files were BGR and were converted"
                                                 if stats["bgr_files"] else ""))
    return 0

