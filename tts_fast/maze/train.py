"""Train the PointMaze planner of one maze on its regenerated dataset (seeded, CPU).

    python -m tts_fast.maze.data  --maze medium                         # the dataset (about 1 min)
    python -m tts_fast.maze.train --maze medium --out tts_fast/maze/weights   # the shipped weights
    python -m tts_fast.maze.train --maze large --out /tmp/w --steps 500       # a quick run

Training windows: a random episode, a random start, then H waypoints every ``stride`` steps of the
recorded positions (observations). Loss: MSE of the x0-prediction on the waypoints between the
inpainted start and goal, at uniform train timesteps of the cosine(256) schedule; the network sees
x_t with the clean start and goal written in (Diffuser's GoalDataset + apply_conditioning).
AdamW with warm-up and cosine decay, EMA of the weights (the EMA weights are saved). One CPU thread
by default, so that two mazes train side by side on two cores. The file is written atomically.
The shipped weights (12,000 steps x batch 64, seed 0) took 891 s (medium), 1129 s (large) and
1581 s (giant) on a 2-core machine shared with a second training or a benchmark; 1.1M parameters.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .. import _threads as threads
from .._arg_types import positive_float, positive_int
from .._io import atomic_path
from .._training import fit_diffusion
from .._user_errors import command
from . import data as _data
from .envs import MAZES, check_maze_name
from .planner import Normalizer, TemporalUnet, num_params, planner_schedule
from .weights import weights_path

# Per-maze plan shape: H waypoints every `stride` steps. The dataset's expert covers about 1.4 units
# (a third of a cell) in 10 steps; H is chosen so that (H - 1) * stride steps cover the longest of
# the maze's 5 tasks at that pace with some slack, and stays within the 1000-step episode.
PLAN = {"medium": dict(horizon=40, stride=10), "large": dict(horizon=64, stride=10),
        "giant": dict(horizon=96, stride=10), "ultra": dict(horizon=256, stride=10)}
NET = dict(transition_dim=2, dim=32, dim_mults=(1, 2, 4))
DEFAULTS = dict(steps=12000, batch=64, lr=1e-3, ema=0.999, seed=0)


def windows(obs: np.ndarray, terminals: np.ndarray, horizon: int, stride: int):
    """(episode start offsets, episode lengths) usable for windows of horizon waypoints."""
    ends = np.nonzero(terminals)[0]
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    span = (horizon - 1) * stride
    ok = lengths > span
    if not ok.any():
        raise ValueError(f"no episode is longer than a plan of {span} steps")
    return starts[ok], lengths[ok] - span


def sample_batch(obs_t: torch.Tensor, starts, counts, horizon, stride, batch, gen) -> torch.Tensor:
    e = torch.randint(0, len(starts), (batch,), generator=gen)
    off = (torch.rand(batch, generator=gen) * torch.as_tensor(counts)[e].double()).long()
    base = torch.as_tensor(starts)[e] + off
    idx = base[:, None] + stride * torch.arange(horizon)[None]
    return obs_t[idx]


def diffusion_loss(net, x0, ab, gen):
    b = x0.shape[0]
    t = torch.randint(0, ab.numel(), (b,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    a = ab[t].view(-1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    xt = torch.cat([x0[:, :1], xt[:, 1:-1], x0[:, -1:]], dim=1)  # inpainted start and goal
    pred = net(xt.transpose(1, 2), t.float()).transpose(1, 2)
    return F.mse_loss(pred[:, 1:-1], x0[:, 1:-1])


def train(maze_name: str, *, steps: int, batch: int, lr: float, ema_decay: float, seed: int, data_dir=None,
          horizon=None, stride=None, log=print):
    check_maze_name(maze_name)
    plan = dict(PLAN[maze_name])
    if horizon:
        plan["horizon"] = horizon
    if stride:
        plan["stride"] = stride
    h, k = plan["horizon"], plan["stride"]
    d = _data.load(_data.dataset_path(maze_name, data_dir))
    dv = _data.load(_data.dataset_path(maze_name, data_dir, val=True))
    norm = Normalizer(maze_name)
    obs = norm.normalize(torch.from_numpy(d["observations"]).float())
    obs_v = norm.normalize(torch.from_numpy(dv["observations"]).float())
    st, cnt = windows(d["observations"], d["terminals"], h, k)
    st_v, cnt_v = windows(dv["observations"], dv["terminals"], h, k)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ab = planner_schedule().alpha_bar.float()
    ema, info = fit_diffusion(TemporalUnet(**NET), lambda net: diffusion_loss(net, sample_batch(obs, st, cnt, h, k, batch, gen), ab, gen),
                              steps=steps, lr=lr, ema_decay=ema_decay, warmup=300, floor=0.05, name=maze_name, log=log)
    seconds, running = info["seconds"], info["final_loss"]
    gv = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        val = float(np.mean([diffusion_loss(ema, sample_batch(obs_v, st_v, cnt_v, h, k, 256, gv), ab, gv).item() for _ in range(8)]))
    return ema, dict(plan=plan, seconds=seconds, final_loss=running, val_loss=val, train_transitions=int(obs.shape[0]))


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.maze.train``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.maze.train",
                                description="Train the temporal-UNet planner of one PointMaze on its regenerated dataset "
                                "(seeded) and write OUT/pointmaze_MAZE.pt.")
    p.add_argument("--maze", required=True, choices=MAZES, help="which maze")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for pointmaze_MAZE.pt")
    p.add_argument("--data", default=None, metavar="DIR", help="dataset folder (default: the one python -m tts_fast.maze.data writes)")
    p.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"], help=f"training steps (default {DEFAULTS['steps']})")
    p.add_argument("--batch", type=positive_int, default=DEFAULTS["batch"], help=f"plans per training step (default {DEFAULTS['batch']})")
    p.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"], help=f"learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help=f"seed of the initialisation and the batches (default {DEFAULTS['seed']})")
    p.add_argument("--horizon", type=int, default=None, help="waypoints per plan, a multiple of 4 (default: the maze's)")
    p.add_argument("--stride", type=positive_int, default=None, help="simulator steps between waypoints (default: the maze's)")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.maze.train")
def main(argv=None) -> int:
    """``python -m tts_fast.maze.train``: parse ``argv``, train, write the planner; the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.horizon is not None and (args.horizon < 4 or args.horizon % 4):
        p.error("--horizon must be >= 4 and divisible by 4")
    n_threads = threads.apply(args.threads)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    net, info = train(args.maze, steps=args.steps, batch=args.batch, lr=args.lr, ema_decay=DEFAULTS["ema"], seed=args.seed,
                      data_dir=args.data, horizon=args.horizon, stride=args.stride)
    command = "python -m tts_fast.maze.train " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = dict(maze=args.maze, seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr, ema_decay=DEFAULTS["ema"],
                seconds=info["seconds"], final_loss=info["final_loss"], val_loss=info["val_loss"], params=num_params(net),
                train_transitions=info["train_transitions"], torch=str(torch.__version__), threads=n_threads,
                command=command, schedule="cosine(256)", prediction="x0", data="regenerated (tts_fast.maze.data), not the official files")
    config = {"net": dict(NET, dim_mults=list(NET["dim_mults"])), **info["plan"], "maze": args.maze}
    sd = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    path = weights_path(args.maze, out)
    with atomic_path(path, ".pt") as tmp:
        torch.save({"kind": "pointmaze_planner", "config": config, "state_dict": sd, "meta": meta}, tmp)
    print(f"{args.maze}: {meta['params']:,} params, loss {info['final_loss']:.5f}, val {info['val_loss']:.5f}, "
          f"{info['seconds']:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
