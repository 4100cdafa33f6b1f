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
import os
import sys
import time

import torch
import torch.nn.functional as F

from .. import _threads as threads
from .._arg_types import positive_int
from .._io import check_writable_dir
from .._training import atomic_torch_save, augment_images, fit_classifier, fit_diffusion, float32_state
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


def augment(x: torch.Tensor, gen: torch.Generator, noise: float = 0.4) -> torch.Tensor:
    """Random one-pixel shifts (zero = background padding) and Gaussian noise on half the batch."""
    return augment_images(x, gen, noise=noise, max_shift=1)


def train_classifier(name: str, x, y, *, steps: int, seed: int, batch: int = 128, log=print) -> tuple[torch.nn.Module, dict]:
    """One digits classifier ``name`` (its architecture and config), seeded: (net in eval mode, {'config', 'seconds'})."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = CLASSIFIER_CONFIGS[name]
    net, seconds = fit_classifier(CLASSIFIER_ARCHS[name](**cfg), x, y, steps=steps, gen=gen, batch=batch, augment=augment,
                                  name=name, log=log)
    return net, {"config": cfg, "seconds": seconds}


@torch.no_grad()
def accuracy(net, x, y) -> float:
    """Fraction of images x [n, ...] that ``net`` classifies as their labels y [n]."""
    net.eval()
    return float((net(x).argmax(1) == y).float().mean())


def train_unet(x, *, steps: int, seed: int, batch: int = 128, ema_decay: float = 0.999, log=print):
    """The digits UNet (epsilon-prediction MSE, uniform timesteps), seeded: (EMA net, info)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ab = digits_schedule().alpha_bar.to(torch.float32)

    def loss_at(net):
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        x0 = x[idx]
        t = torch.randint(0, ab.numel(), (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = ab[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return F.mse_loss(net(xt, t.float()), eps)

    ema, info = fit_diffusion(DigitsUNet(**UNET_CONFIG), loss_at, steps=steps, lr=1e-3, ema_decay=ema_decay, log=log)
    info["config"] = {"channels": list(UNET_CONFIG["channels"]), "temb": UNET_CONFIG["temb"]}
    return ema, info


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
    try:
        out = check_writable_dir(args.out)
    except OSError as e:
        p.error(str(e))
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
            atomic_torch_save({"kind": name, "config": info["config"], "state_dict": float32_state(net), "meta": meta},
                              os.path.join(out, f"digits_{name}.pt"))
    if args.only in ("all", "unet"):
        net, info = train_unet(x_tr, steps=args.steps, seed=args.seed + SEED_OFFSET["unet"], batch=args.batch)
        meta = dict(common, steps=args.steps, seconds=info["seconds"], params=num_params(net), final_loss=info["final_loss"],
                    ema_decay=info["ema_decay"], schedule="cosine(1000)", prediction="epsilon")
        print(f"unet: {meta['params']} params, final loss {info['final_loss']:.4f} ({meta['seconds']:.0f}s)")
        atomic_torch_save({"kind": "unet", "config": info["config"], "state_dict": float32_state(net), "meta": meta},
                          os.path.join(out, DIFFUSION_FILE))
    print(f"done in {time.perf_counter() - t_all:.0f}s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
