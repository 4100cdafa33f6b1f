"""NFE throughput of search, side by side in one run: how peers execute it vs tts_fast.

For an architecture (SD1.5 at 512², SDXL or FLUX.1 at 1024²; the published configs with random
weights and random prompt embeddings, tts_fast.models.architectures: nothing is downloaded) and
particle counts N, one process on one device times:

- ``diffusers``: the stock pipeline sampling the same N images (its own loop and scheduler);
- ``peer``: a faithful peer-style SMC loop (FK-steering's execution, peers.md §2.1): eager network
  with CFG, diffusers' stateful ``scheduler.step`` (eta = 1) for the x0-prediction and the next
  latents, at the evaluation levels a VAE decode of x0, the reward brought to the host, weights
  and ESS on the host, ``torch.multinomial``, latents indexed by the ancestors. It evaluates at the
  same levels as bfs_best (25/50/75 % of the steps) and decodes the final samples, so the work is
  matched. SD and SDXL only: no peer runs particle methods on FLUX (its sampler is a deterministic
  ODE), so FLUX's baseline is plain diffusers sampling;
- ``tts_fast/<backend> network alone``: the x0-predictions of N particles per call, no search,
  no decode: the backend's ceiling;
- ``tts_fast/<backend>``: ``tts.search`` through DiffusersModel for bfs_best, DFS (quantile
  threshold, budget N x steps; compact slots, and fixed slots: sync-free, constant batch) and
  bfs_best + local search (the gradient path: one backward pass
  through the network per NFE), with backends eager, compile and cudagraphs.

NFE/s counts particle-steps (a CFG pair is one NFE); model evaluations/s counts a CFG pair twice.
Every timed run follows an untimed warm-up (compilation, graph capture). For tts_fast rows one
extra run with the device synchronised around each stage gives the breakdown and the search
overhead (search ops + host control as a fraction of the step).

    python benchmarks/throughput.py --arch sd15 --particles 4 8 16 32        # CUDA
    python benchmarks/throughput.py --smoke                                   # tiny networks (CPU)

    python benchmarks/throughput.py --tables                                 # README tables from the CUDA JSONs

Writes benchmarks/results/throughput_<arch>_<cuda|cpu>.json; ``--tables`` rewrites README's table of
each architecture that has a full-size CUDA result there. A smoke run checks the harness and says
nothing about GPU speed.
"""

from __future__ import annotations

import argparse
import sys
import json
import math
import time

import torch

from _common import README, RESULTS, atomic_write_json, environment, markdown_table, refresh_tables
from tts_fast._user_errors import command  # noqa: E402

import tts_fast as tts
from tts_fast.models import architectures
from tts_fast.models.diffusers import adapter_of

SIZES = {"sd15": 512, "sdxl": 1024, "flux": 1024}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int):
    fn()  # warm-up: compilation, graph capture, allocator
    sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def cheap_reward(img: torch.Tensor) -> torch.Tensor:
    """A stand-in verifier (differentiable, negligible cost) so that network + decode dominate."""
    return img.float().mean(dim=(1, 2, 3))


def peer_smc(pipe, emb, n: int, steps: int, guidance: float, size: int, device, lam: float = 1.0, seed: int = 0):
    """FK-steering-style execution of an SMC search (SD / SDXL): see the module docstring."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps, device=device)
    gen = torch.Generator(device).manual_seed(seed)
    unet, vae = pipe.unet, pipe.vae
    cfg = guidance > 1
    h = size // pipe.vae_scale_factor
    latents = torch.randn(n, unet.config.in_channels, h, h, generator=gen, device=device, dtype=unet.dtype)
    pe, ne = emb["prompt_embeds"].expand(n, -1, -1), emb["negative_prompt_embeds"].expand(n, -1, -1)
    ctx = torch.cat([ne, pe]) if cfg else pe
    added = None
    if "pooled_prompt_embeds" in emb:
        pooled = emb["pooled_prompt_embeds"].expand(n, -1)
        npooled = emb["negative_pooled_prompt_embeds"].expand(n, -1)
        time_ids = torch.tensor([size, size, 0, 0, size, size], device=device, dtype=unet.dtype).expand(n, -1)
        added = {"text_embeds": torch.cat([npooled, pooled]) if cfg else pooled,
                 "time_ids": torch.cat([time_ids, time_ids]) if cfg else time_ids}
    levels = {round(f * steps) for f in (0.25, 0.5, 0.75)}
    for i, t in enumerate(sched.timesteps):
        inp = torch.cat([latents, latents]) if cfg else latents
        inp = sched.scale_model_input(inp, t)
        with torch.no_grad():
            eps = unet(inp, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
        if cfg:
            u, c = eps.chunk(2)
            eps = u + guidance * (c - u)
        out = sched.step(eps, t, latents, eta=1.0, generator=gen)
        latents = out.prev_sample
        if i in levels or i == steps - 1:
            with torch.no_grad():
                z0 = (out.pred_original_sample / vae.config.scaling_factor).to(vae.dtype)
                img = (vae.decode(z0).sample / 2 + 0.5).clamp(0, 1)
            r = cheap_reward(img).cpu()  # the reward comes back to the host
            w = torch.softmax(lam * r, 0)
            ess = float(1.0 / (w**2).sum())  # host-side ESS, as peers log it
            if i != steps - 1 and ess < n:
                idx = torch.multinomial(w, n, replacement=True)
                latents = latents[idx.to(device)]
    return latents


def run(args, save=None) -> dict:
    """The measurements of ``args``; ``save(data)`` is called after every row (partial results)."""
    device = torch.device(args.device)
    smoke = args.smoke or device.type == "cpu"
    dtype = adapter_of(args.arch).default_dtype(device)  # fp32 on the CPU, the pipeline's half dtype on a GPU
    size = 32 if smoke else SIZES[args.arch]
    steps = args.steps
    pipe = architectures.build_pipeline(args.arch, smoke=smoke, device=device, dtype=dtype)
    if pipe.vae.dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
        # DiffusersModel upcasts such a VAE in place; do it once here so that every row decodes alike
        pipe.vae.to(torch.float32)
    emb = architectures.random_embeddings(args.arch, 1, smoke=smoke, device=device, dtype=dtype)
    verifier = tts.verifiers.Function(cheap_reward, differentiable=True)
    guidance = args.guidance if args.guidance is not None else (3.5 if args.arch == "flux" else 7.5)
    cfg = args.arch != "flux" and guidance > 1
    rows = []
    data = dict(
        benchmark="throughput", arch=args.arch, smoke=smoke,
        note=("smoke run on tiny networks: checks the harness, says nothing about GPU throughput" if smoke else
              f"{args.arch} architecture at {size}x{size}, random weights, {dtype}"),
        image_size=size, dtype=str(dtype), steps=steps, guidance=guidance, decode_scale=args.decode_scale, repeats=args.repeats,
        verifier="mean brightness of the decoded image (negligible cost)", environment=environment(device), results=rows,
        complete=False,
    )

    def record(row):
        rows.append(row)
        if save is not None:
            save(data)

    def add(setting, n, seconds, nfe, **extra):
        row = dict(setting=setting, particles=n, seconds=seconds, nfe=nfe, nfe_per_s=nfe / seconds,
                   model_evals_per_s=nfe / seconds * (2 if cfg else 1), **extra)
        record(row)
        print(f"{args.arch} N={n:3d} {setting:34s} {row['nfe_per_s']:9.2f} NFE/s", flush=True)
        return row

    for n in args.particles:
        nfe = n * steps
        call = dict(num_inference_steps=steps, height=size, width=size, output_type="latent", guidance_scale=guidance)
        if args.arch == "flux":
            call.update(prompt_embeds=emb["prompt_embeds"].expand(n, -1, -1), pooled_prompt_embeds=emb["pooled_prompt_embeds"].expand(n, -1))
        else:
            call.update({k: (v.expand(n, -1, -1) if v.dim() == 3 else v.expand(n, -1)) for k, v in emb.items()}, eta=1.0)
        plain = timed(lambda: pipe(**call, generator=torch.Generator(device).manual_seed(0)), device, args.repeats)
        add("diffusers (plain sampling)", n, plain, nfe)
        peer = None
        if args.arch != "flux":
            peer = add("peer SMC (FK-style loop)", n, timed(lambda: peer_smc(pipe, emb, n, steps, guidance, size, device), device, args.repeats), nfe)
        for backend in args.backends:
            if backend == "cudagraphs" and device.type != "cuda":
                record(dict(setting=f"tts_fast/{backend}", particles=n, skipped="CUDA graphs need a CUDA device"))
                continue
            try:
                model = tts.models.DiffusersModel(pipe, guidance_scale=guidance, height=size, width=size, backend=backend,
                                                  max_batch=(2 * n if cfg else n) * 2, decode_scale=args.decode_scale, **emb)
            except (ValueError, ImportError) as e:
                record(dict(setting=f"tts_fast/{backend}", particles=n, skipped=str(e)))
                continue
            x = torch.randn(n, *model.sample_shape, device=device)
            t = model.schedule.grid(steps).timesteps[steps // 2].expand(n).to(device)
            c = torch.zeros(n, dtype=torch.int64, device=device)

            def network():
                with torch.no_grad():
                    for _ in range(steps):
                        model(x, t, c)

            add(f"tts_fast/{backend} network alone", n, timed(network, device, args.repeats), nfe)
            for label, method, opts in (("bfs_best", "bfs_best", {}),
                                        ("dfs", "dfs", dict(quantile=0.5, max_backtracks=None, budget=nfe)),
                                        ("dfs fixed slots", "dfs", dict(quantile=0.5, max_backtracks=None, budget=nfe, slots="fixed")),
                                        ("bfs_best + local", "bfs_best", dict(local_steps=2, rho=0.1))):
                if label not in args.methods:
                    continue
                n_eff = n // 2 if "local" in label else n  # local search spends its NFE on 2 rounds per level
                if n_eff < 1 or (method == "dfs" and n_eff < 2):
                    continue
                kw = dict(n_particles=n_eff if method != "dfs" else max(2, n // 2), num_steps=steps, seed=0, progress=False, **opts)
                res = {}

                def once():
                    res["r"] = tts.search(model, verifier, method, **kw)

                sec = timed(once, device, args.repeats)
                prof = tts.search(model, verifier, method, profile=True, **kw)
                st = dict(prof.timings)
                busy = st.get("model", 0) + st.get("decode", 0) + st.get("verifier", 0)
                r = res["r"]
                add(f"tts_fast/{backend} {label}", n, sec, r.nfe.model, model_grad=r.nfe.model_grad, cfg=r.nfe.cfg,
                    vs_peer=(r.nfe.model / sec) / (peer["nfe_per_s"]) if peer else None,
                    vs_diffusers=(r.nfe.model / sec) / (nfe / plain),
                    stage_seconds={k: round(v, 5) for k, v in st.items()},
                    search_overhead=max(0.0, st["total"] - busy) / st["total"])
    data["complete"] = True
    return data


def readme_table(data: dict) -> str:
    rows = [r for r in data["results"] if "skipped" not in r]
    body = []
    for r in rows:
        body.append([r["particles"], r["setting"], f"{r['nfe_per_s']:.1f}", f"{r['model_evals_per_s']:.1f}",
                     "" if r.get("vs_peer") is None else f"{r['vs_peer']:.2f}x",
                     "" if r.get("search_overhead") is None else f"{100 * r['search_overhead']:.1f}%"])
    env = data["environment"]
    head = f"{data['arch']}, {data['note']}, {data['steps']} steps, guidance {data['guidance']}; {env['device_name']}, torch {env['torch']}, CUDA {env['cuda']}"
    return head + "\n\n" + markdown_table(["N", "setting", "NFE/s", "model evals/s", "vs peer", "search overhead"], body)


NO_GPU_RUN = ("No full-size GPU run yet, so no table: `python benchmarks/throughput.py --arch sd15 --device cuda` (and sdxl, "
              "flux) on a GPU machine, then `--tables`.")


def gpu_tables(runs: dict) -> str:
    """README's throughput block: a table per architecture with a full-size CUDA run, or one line saying there is none."""
    return "\n\n".join(readme_table(data) for data in runs.values()) if runs else NO_GPU_RUN


def write_tables() -> None:
    """README's throughput block from every architecture's full-size CUDA result (smoke runs say nothing about GPU speed)."""
    runs = {}
    for arch in architectures.ARCHITECTURES:
        path = RESULTS / f"throughput_{arch}_cuda.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if data.get("smoke"):
            raise SystemExit(f"{path} is a smoke run: README's tables need a full-size CUDA run")
        runs[arch] = data
    refresh_tables(README, "throughput", [("gpu", gpu_tables)], runs)
    print(f"wrote README's throughput block ({', '.join(runs) or 'no GPU run yet'})")


@command("python benchmarks/throughput.py")
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="sd15", choices=architectures.ARCHITECTURES)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny networks (always on CPU)")
    ap.add_argument("--particles", type=int, nargs="+", default=None, help="default 4 8 16 32 (smoke: 2 4)")
    ap.add_argument("--steps", type=int, default=None, help="default 50 (smoke: 8)")
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--backends", nargs="+", default=["eager", "compile", "cudagraphs"])
    ap.add_argument("--methods", nargs="+", default=["bfs_best", "dfs", "dfs fixed slots", "bfs_best + local"])
    ap.add_argument("--decode-scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tables", action="store_true", help="only rewrite README's tables from the full-size CUDA results")
    ap.add_argument("--out", default=None, help="output JSON, rewritten after every row "
                                                "(default benchmarks/results/throughput_<arch>_<cuda|cpu>.json)")
    args = ap.parse_args(argv)
    if args.tables:
        return write_tables()
    smoke = args.smoke or args.device == "cpu"
    args.particles = args.particles or ([2, 4] if smoke else [4, 8, 16, 32])
    args.steps = args.steps or (8 if smoke else 50)
    if smoke and "compile" in args.backends and args.device == "cpu":
        args.backends = [b for b in args.backends if b != "compile"]  # minutes of CPU compilation for a smoke run
    out = args.out or RESULTS / f"throughput_{args.arch}_{torch.device(args.device).type}.json"
    data = run(args, save=lambda d: atomic_write_json(out, d))  # as it goes: a run cut short keeps its rows
    atomic_write_json(out, data)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
