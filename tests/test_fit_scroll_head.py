"""scripts/fit_scroll_head.py: refits only the scroll head of a real (tiny) checkpoint on real episodes."""
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def test_fit_scroll_head_changes_only_the_head(tiny_checkpoint, real_episodes, tmp_path, capsys):
    import fit_scroll_head
    from smbwm.models.world_model import WorldModel
    from dataset import main as dataset_main

    data = tmp_path / "data"
    shutil.copytree(real_episodes, data)
    assert dataset_main(["split", str(data), "--test-fraction", "0.4"]) == 0
    out = tmp_path / "fitted"
    assert fit_scroll_head.main(["--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
                                 "--steps", "6", "--batch", "8"]) == 0
    printed = capsys.readouterr().out
    assert "held out after" in printed and "open_loop" in printed
    before, _ = WorldModel.load(tiny_checkpoint)
    after, meta = WorldModel.load(out)
    assert meta["scroll_head_fit"]["steps"] == 6 and meta["step"] > 0
    sb, sa = before.state_dict(), after.state_dict()
    head = [k for k in sb if k.startswith("denoiser.scroll_head.")]
    assert head and any(not torch.equal(sb[k], sa[k]) for k in head)
    assert all(torch.equal(sb[k], sa[k]) for k in sb if k not in head)


def test_fit_scroll_head_rejects_a_folder_without_checkpoint(real_episodes, tmp_path):
    import fit_scroll_head
    import pytest
    with pytest.raises(SystemExit, match="no world-model checkpoint"):
        fit_scroll_head.main(["--checkpoint", str(tmp_path), "--data", str(real_episodes), "--out", str(tmp_path / "o")])
