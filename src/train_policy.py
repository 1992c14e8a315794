"""Train the Modular Mind policy: behaviour-cloning warm start, then REINFORCE on the real emulator.

    python src/train_policy.py                         # full schedule, writes checkpoints/policy/modular_mind.npz
    python src/train_policy.py policy/schedule=smoke run_dir=/tmp/p output=/tmp/p/mm.npz
    python src/train_policy.py levels=[1-1,1-2] policy.schedule.time_budget_min=10 wandb.mode=online

Re-running the same command resumes from <run_dir>/state.safetensors (iteration, optimiser, best score and
the wall time already spent, which counts against `policy.schedule.time_budget_min`). Every batch of
episodes is played at explore=0 by the policy being trained, so it doubles as that policy's
evaluation: its parameters are saved to `output` when the batch's mean progress beats the best so far
and the batch is not degenerate (stalling, no progress, one action only).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from smbwm.agents.modular_mind import default_spec, init_params, load_npz, n_params, save_npz
from smbwm.policy.model import ModularMind
from smbwm.policy.reinforce import EliteBuffer, LossConfig, behaviour_clone, degenerate, imitation_step, reinforce_step, \
    trimmed
from smbwm.policy.rollout import RewardConfig, play_batch, play_demos, worker_init
from smbwm.policy.state import LEGACY_FILE, STATE_FILE, load_state, save_state as write_state
from smbwm.utils.checkpoint import CheckpointError
from smbwm.utils.config_defaults import register_dataclass_defaults
from smbwm.utils.config_errors import config_error


@dataclass
class Schedule:
    demos_per_level: int = 3        # scripted-runner episodes per level for the warm start (0: none)
    demo_explore: float = 0.05      # the runner's random-action probability in demos (state diversity)
    bc_epochs: int = 40
    bc_lr: float = 3e-3
    iterations: int = 300           # REINFORCE batches
    episodes_per_level: int = 2     # per batch
    lr: float = 1e-3
    time_budget_min: float = 25.0   # wall time for the whole run, warm start included
    trim: int = 12                  # steps dropped before a death in demos and self-imitation episodes
    sil_per_level: int = 2          # self-imitation: best episodes kept per level (0: pure REINFORCE)
    sil_steps: int = 2              # imitation minibatch steps after each REINFORCE step
    sil_coef: float = 1.0
    snapshot_every: int = 0         # also keep the playing policy every n batches in <run_dir>/snapshots (0: never)


# The defaults of policy.schedule, reward and loss are these dataclasses' fields (config/policy.yaml and
# the schedule files hold only what differs); they are built with cls(**section), hence no _target_.
register_dataclass_defaults([("policy/schedule", "dataclass", Schedule), ("reward", "dataclass", RewardConfig),
                             ("loss", "dataclass", LossConfig)], target=False)


def _jobs(levels: list[str], per_level: int, it: int, seed: int, workers: int) -> list[list[tuple[str, int]]]:
    eps = [(lv, seed * 1_000_003 + (it + 1) * 1000 + i * len(levels) + k) for i in range(per_level) for k, lv in enumerate(levels)]
    return [eps[w::workers] for w in range(workers) if eps[w::workers]]


def _play(pool, fn, params, spec, jobs, rc: RewardConfig, explore: float):
    args = [({k: np.asarray(v) for k, v in params.items()}, spec, j, asdict(rc), explore) for j in jobs]
    # map_async + a timeout: a plain map() blocks Ctrl-C until the batch ends
    return [t for batch in (pool.map_async(fn, args).get(24 * 3600) if pool else map(fn, args)) for t in batch]


def _check(cfg: DictConfig) -> tuple[list[str], Schedule, RewardConfig, LossConfig]:
    from smbwm.stages import expand_stages
    try:
        levels = expand_stages(list(cfg.levels) if OmegaConf.is_list(cfg.levels) else str(cfg.levels))
    except ValueError as e:
        config_error(str(e))
    if not levels:
        config_error("levels must name at least one level, e.g. levels=[1-1,1-2]")
    try:
        sched = Schedule(**OmegaConf.to_container(cfg.policy.schedule))
        rc, lc = RewardConfig(**OmegaConf.to_container(cfg.reward)), LossConfig(**OmegaConf.to_container(cfg.loss))
    except TypeError as e:
        config_error(f"unknown option in schedule/reward/loss: {e}")
    if int(cfg.workers) < 1 or sched.episodes_per_level < 1:
        config_error("workers and schedule.episodes_per_level must be >= 1")
    return levels, sched, rc, lc


def train(cfg: DictConfig) -> dict[str, Any]:
    levels, sched, rc, lc = _check(cfg)
    torch.set_num_threads(1)            # a few thousand parameters: threads only cost
    torch.manual_seed(int(cfg.seed))
    run_dir, output = Path(cfg.run_dir), Path(cfg.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    spec = default_spec(**OmegaConf.to_container(cfg.policy.net))
    init = init_params(spec, seed=int(cfg.seed))
    if cfg.get("init_from"):
        # continue from trained weights (e.g. the shipped ones): no warm start, same net required
        try:
            init, init_spec, _ = load_npz(str(cfg.init_from))
        except (FileNotFoundError, ValueError) as e:
            config_error(str(e))
        if init_spec != spec:
            config_error(f"init_from={cfg.init_from} has another net config than policy/net")
    model = ModularMind(spec, init)
    opt = torch.optim.Adam(model.parameters(), lr=sched.lr)
    st: dict[str, Any] = {"iteration": 0, "best": -1.0, "elapsed": 0.0, "warm": False, "wandb_id": None, "history": [],
                          "elite": {}}
    if cfg.get("init_from"):
        st["warm"], st["init_from"] = True, str(cfg.init_from)
    if cfg.resume and not state_path.exists() and (run_dir / LEGACY_FILE).exists():
        config_error(f"{run_dir / LEGACY_FILE}: a pickle state from an older version is never loaded (unpickling "
                     "can run any code); delete it to start over, or use another run_dir")
    if cfg.resume and state_path.exists():
        try:
            st = load_state(state_path, spec, model, opt)
        except CheckpointError as e:
            config_error(str(e))
        print(f"resumed {state_path}: iteration {st['iteration']}, best {st['best']:.0f}, {st['elapsed'] / 60:.1f} min spent")
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb
    run = wandb.init(project=cfg.wandb.project, mode=cfg.wandb.mode, dir=str(run_dir), id=st["wandb_id"], resume="allow",
                     config=OmegaConf.to_container(cfg, resolve=True), name=run_dir.name)
    st["wandb_id"] = run.id
    elite = EliteBuffer(sched.sil_per_level, sched.trim)
    level_weight = {lv: levels.count(lv) for lv in levels}     # 1-1 listed thrice: thrice the imitation weight
    elite.best = st["elite"]
    gen = torch.Generator().manual_seed(int(cfg.seed) + st["iteration"])
    budget, t0, spent0 = sched.time_budget_min * 60, time.time(), st["elapsed"]
    ctx = mp.get_context("fork")
    pool = ctx.Pool(int(cfg.workers), initializer=worker_init, initargs=(int(cfg.nice),)) if int(cfg.workers) > 1 else None
    if pool is None:
        worker_init(int(cfg.nice), pool_worker=False)

    def save_state():
        st["elapsed"], st["elite"] = spent0 + time.time() - t0, elite.best
        write_state(state_path, spec, model, opt, st)

    try:
        if not st["warm"] and sched.demos_per_level > 0 and sched.bc_epochs > 0:
            demos = _play(pool, play_demos, model.numpy_params(), spec,
                          _jobs(levels, sched.demos_per_level, -1, int(cfg.seed), int(cfg.workers)), rc, sched.demo_explore)
            ce = behaviour_clone(model, [trimmed(t, sched.trim) for t in demos], sched.bc_epochs, sched.bc_lr, seed=int(cfg.seed))
            st["bc"] = {"steps": int(sum(len(t.actions) for t in demos)), "cross_entropy": ce,
                        "teacher_mean_max_x": float(np.mean([t.max_x for t in demos]))}
            print(f"warm start: {st['bc']['steps']} demo steps, cross-entropy {ce:.3f}, "
                  f"runner mean max x {st['bc']['teacher_mean_max_x']:.0f}")
            run.log({"bc/cross_entropy": ce, **{f"bc/{k}": v for k, v in st["bc"].items()}}, step=0)
            opt = torch.optim.Adam(model.parameters(), lr=sched.lr)    # fresh moments after the warm start
            st["warm"] = True
            save_state()
        bar = tqdm(total=sched.iterations, initial=st["iteration"], desc="REINFORCE", unit="batch", dynamic_ncols=True)
        while st["iteration"] < sched.iterations and spent0 + time.time() - t0 < budget:
            params = model.numpy_params()
            trajs = _play(pool, play_batch, params, spec, _jobs(levels, sched.episodes_per_level, st["iteration"],
                                                                 int(cfg.seed), int(cfg.workers)), rc, 0.0)
            score = float(np.mean([t.max_x for t in trajs]))
            flags = float(np.mean([t.flag for t in trajs]))
            why = degenerate(trajs, len(spec["actions"]))
            stats = reinforce_step(model, opt, trajs, lc)
            if sched.sil_per_level > 0:
                elite.add(trajs)
                for _ in range(sched.sil_steps):
                    stats["imitation_ce"] = imitation_step(model, opt, elite.trajectories(level_weight), sched.sil_coef,
                                                           gen=gen)
            st["iteration"] += 1
            saved = why is None and score > st["best"]
            if saved:
                st["best"] = score
                save_npz(output, params, spec, iteration=st["iteration"] - 1, mean_max_x=score, flag_rate=flags,
                         levels=levels, minutes=round((spent0 + time.time() - t0) / 60, 1), warm_start=st["warm"],
                         init_from=st.get("init_from"))
                # every selected policy is kept too: a noisy batch score can be re-checked on more episodes
                save_npz(run_dir / "selected" / f"it{st['iteration'] - 1:04d}.npz", params, spec,
                         iteration=st["iteration"] - 1, mean_max_x=score, flag_rate=flags, levels=levels)
            if sched.snapshot_every and st["iteration"] % sched.snapshot_every == 0:
                # a single batch's score is noisy: snapshots let a later check use more episodes
                save_npz(run_dir / "snapshots" / f"it{st['iteration'] - 1:04d}.npz", params, spec,
                         iteration=st["iteration"] - 1, mean_max_x=score, flag_rate=flags, levels=levels)
            per_level = {lv: float(np.mean([t.max_x for t in trajs if t.level == lv])) for lv in dict.fromkeys(levels)}
            st["history"].append({"it": st["iteration"], "mean_max_x": score, "flag_rate": flags, "saved": saved,
                                  "rejected": why, **per_level})
            run.log({"mean_max_x": score, "flag_rate": flags, "saved": int(saved), "degenerate": int(why is not None),
                     "steps": sum(len(t.actions) for t in trajs), **stats,
                     **{f"max_x/{lv}": v for lv, v in per_level.items()}}, step=st["iteration"])
            save_state()
            bar.update(1)
            bar.set_postfix(x=f"{score:.0f}", flag=f"{flags:.2f}", best=f"{st['best']:.0f}", ent=f"{stats['entropy']:.2f}",
                            note="saved" if saved else (why or ""))
        bar.close()
    finally:
        if pool:
            pool.terminate()
        save_state()
        run.finish()
    if st["best"] < 0:
        print(f"no checkpoint saved: every batch was degenerate or no batch ran ({output} untouched)")
    else:
        print(f"best mean max x {st['best']:.0f} -> {output} ({n_params(model.numpy_params())} parameters, "
              f"{st['elapsed'] / 60:.1f} min)")
    return st


@hydra.main(config_path="../config", config_name="policy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
