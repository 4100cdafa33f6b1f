"""Train the digits zoo: the diffusion UNet and the three classifiers (seeded, CPU).

    python -m tts_fast.zoo.train --out tts_fast/zoo/weights          # the shipped weights
    python -m tts_fast.zoo.train --out /tmp/w --steps 200             # a quick run
    python -m tts_fast.zoo.train --out /tmp/w --only classifiers

Defaults reproduce the shipped weights (seed 0, 10,000 UNet steps, 3,000 steps per classifier,
one CPU thread so that the floating-point reductions are the same from run to run; other
machines and torch versions may differ in the last bits). The shipped run took 1,317 s on a
2-core machine shared with other jobs (UNet 961 s); unloaded, a UNet step takes about 50 ms on
one thread (about 9 minutes for the UNet). Everything is trained on the train
split of :mod:`tts_fast.zoo.data` only. The UNet: epsilon-prediction MSE, cosine schedule with
1000 train steps, uniform timesteps, AdamW with warm-up and cosine decay, EMA of the weights
(the EMA weights are saved). The classifiers: cross-entropy with light augmentation (random
shifts of one pixel, Gaussian pixel noise on half of each batch, so that they also give useful
gradients on the blurry x0-predictions of noisy levels).

Each file is written atomically (temporary file + rename). Needs scikit-learn for the data.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from .. import _threads as threads
from .._arg_types import positive_int
from .._io import atomic_path
from .._training import train_step
from .._user_errors import command
from .data import load_split
from .model import digits_schedule
from .nets import CLASSIFIER_ARCHS, DigitsUNet, num_params
from .weights import CLASSIFIERS, DIFFUSION_FILE

DEFAULTS = dict(seed=0, unet_steps=10000, clf_steps=3000, batch=128)
# Per-model seed offsets: the classifiers differ in architecture *and* seed.
SEED_OFFSET = {"unet": 0, "verifier": 1, "guide": 2, "evaluator": 3}
CLASSIFIER_CONFIGS = {"verifier": {"width": 32}, "guide": {"width": 16}, "evaluator": {"hidden": 256, "dropout": 0.2}}
UNET_CONFIG = {"channels": (32, 48, 64), "temb": 64}


def atomic_torch_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, then os.replace (never half-written)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, ".pt") as tmp:
        torch.save(obj, tmp)


def _lr(step: int, total: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def augment(x: torch.Tensor, gen: torch.Generator, noise: float = 0.4) -> torch.Tensor:
    """Random one-pixel shifts (zero = background padding) and Gaussian noise on half the batch."""
    n = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx = torch.randint(0, 3, (n,), generator=gen)
    dy = torch.randint(0, 3, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(8)[None])  # [n, 8]
    cols = (dx[:, None] + torch.arange(8)[None])
    out = padded[:, 0][torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]][:, None]
    scale = noise * torch.rand(n, 1, 1, 1, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    return out + scale * torch.randn(out.shape, generator=gen)


def train_classifier(name: str, x, y, *, steps: int, seed: int, batch: int = 128, log=print) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = CLASSIFIER_CONFIGS[name]
    net = CLASSIFIER_ARCHS[name](**cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    net.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, 2e-3, warmup=100)
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        loss = F.cross_entropy(net(augment(x[idx], gen)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % max(1, steps // 5) == 0:
            log(f"  {name} step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    net.eval()
    return net, {"config": cfg, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    return float((net(x).argmax(1) == y).float().mean())


def train_unet(x, *, steps: int, seed: int, batch: int = 128, ema_decay: float = 0.999, log=print):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    schedule = digits_schedule()
    ab = schedule.alpha_bar.to(torch.float32)
    net = DigitsUNet(**UNET_CONFIG)
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    t0 = time.perf_counter()
    running = None
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, 1e-3)
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        x0 = x[idx]
        t = torch.randint(0, ab.numel(), (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = ab[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(net(xt, t.float()), eps)
        train_step(net, ema, opt, loss, step, ema_decay)
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"  unet step {step + 1}/{steps} loss {running:.4f} ({time.perf_counter() - t0:.0f}s)")
    ema.eval()
    return ema, {"config": {"channels": list(UNET_CONFIG["channels"]), "temb": UNET_CONFIG["temb"]},
                 "seconds": time.perf_counter() - t0, "final_loss": running, "ema_decay": ema_decay}


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.zoo.train``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.zoo.train",
                                description="Train the digits diffusion UNet and its three classifiers (verifier, guide, "
                                "held-out evaluator), seeded, and write their .pt files into OUT.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the .pt files")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help=f"base seed (default {DEFAULTS['seed']})")
    p.add_argument("--steps", type=positive_int, default=DEFAULTS["unet_steps"], help=f"UNet training steps (default {DEFAULTS['unet_steps']})")
    p.add_argument("--clf-steps", type=positive_int, default=DEFAULTS["clf_steps"],
                   help=f"training steps per classifier (default {DEFAULTS['clf_steps']})")
    p.add_argument("--batch", type=positive_int, default=DEFAULTS["batch"], help=f"images per training step (default {DEFAULTS['batch']})")
    p.add_argument("--only", choices=("all", "unet", "classifiers"), default="all", help="train only the UNet or only the classifiers")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.zoo.train")
def main(argv=None) -> int:
    """``python -m tts_fast.zoo.train``: parse ``argv``, train, write the weights; the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        p.error(f"cannot create output folder {out}: {e}")
    if not os.access(out, os.W_OK):
        p.error(f"output folder {out} is not writable")
    n_threads = threads.apply(args.threads)
    x_tr, y_tr = load_split("train")
    x_te, y_te = load_split("test")
    command = "python -m tts_fast.zoo.train " + " ".join(argv if argv is not None else sys.argv[1:])
    common = {"seed": args.seed, "torch": str(torch.__version__), "threads": n_threads, "command": command, "train_size": int(x_tr.shape[0]),
              "test_size": int(x_te.shape[0])}
    t_all = time.perf_counter()
    if args.only in ("all", "classifiers"):
        for name in CLASSIFIERS:
            net, info = train_classifier(name, x_tr, y_tr, steps=args.clf_steps, seed=args.seed + SEED_OFFSET[name], batch=args.batch)
            meta = dict(common, steps=args.clf_steps, seed=args.seed + SEED_OFFSET[name], seconds=info["seconds"],
                        params=num_params(net), train_accuracy=accuracy(net, x_tr, y_tr), test_accuracy=accuracy(net, x_te, y_te))
            print(f"{name}: {meta['params']} params, test accuracy {meta['test_accuracy']:.4f} ({meta['seconds']:.0f}s)")
            sd = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}
            atomic_torch_save({"kind": name, "config": info["config"], "state_dict": sd, "meta": meta},
                              os.path.join(out, f"digits_{name}.pt"))
    if args.only in ("all", "unet"):
        net, info = train_unet(x_tr, steps=args.steps, seed=args.seed + SEED_OFFSET["unet"], batch=args.batch)
        meta = dict(common, steps=args.steps, seconds=info["seconds"], params=num_params(net), final_loss=info["final_loss"],
                    ema_decay=info["ema_decay"], schedule="cosine(1000)", prediction="epsilon")
        print(f"unet: {meta['params']} params, final loss {info['final_loss']:.4f} ({meta['seconds']:.0f}s)")
        sd = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}
        atomic_torch_save({"kind": "unet", "config": info["config"], "state_dict": sd, "meta": meta}, os.path.join(out, DIFFUSION_FILE))
    print(f"done in {time.perf_counter() - t_all:.0f}s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
