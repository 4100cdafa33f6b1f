"""NFE throughput of bfs_best on the SD1.5 architecture, per backend, against plain diffusers sampling.

The SD1.5 UNet and VAE are built from their published configs with random weights (speed does not
depend on the weights) and prompt embeddings are random [P, 77, 768] tensors, so nothing is
downloaded. For each particle count N (one prompt, N particles):

- ``diffusers``: the stock StableDiffusionPipeline sampling the same batch of N images (DDIM,
  ``output_type="latent"``: denoising only, its scheduler.step on the host side);
- ``bfs_best/<backend>``: ``tts.search(model, verifier, "bfs_best", n_particles=N, ...)`` through
  DiffusersModel with that backend, the verifier scoring a VAE decode of every particle's x0-prediction
  at every step (the decode is part of the search's cost; ``--decode-scale 0.5`` halves each side);
  the verifier itself is a cheap function of the image so that model + decode dominate;
- ``model/<backend>``: the network alone through DiffusersModel (x0-prediction of the N particles
  per call, no decode), the backend's ceiling.

Throughput is NFE/s (particle-steps per second; a CFG pair is one NFE) and model evaluations/s
(a CFG pair is two). Each timed run follows an untimed warm-up run (compilation, graph capture).
Ratios are side by side in one process on one device.

    python benchmarks/diffusers_throughput.py                 # CUDA: SD1.5 at 512^2, fp16, N = 4 8 16
    python benchmarks/diffusers_throughput.py --smoke         # a tiny UNet (the default on CPU)

Writes benchmarks/results/diffusers_throughput_<cuda|cpu>.json. On CPU the numbers are a smoke test
of the harness on a tiny model and are labelled so; they say nothing about GPU throughput.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import RESULTS, atomic_write_json, environment

import tts_fast as tts

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=512, scaling_factor=0.18215,
)
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                      steps_offset=1, timestep_spacing="leading")
# a tiny SD-shaped model for the CPU smoke run
SMOKE_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
SMOKE_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32,
                 scaling_factor=0.18215)


def build_pipeline(smoke: bool, device, dtype):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**(SMOKE_UNET if smoke else SD15_UNET))
    vae = AutoencoderKL(**(SMOKE_VAE if smoke else SD15_VAE))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=DDIMScheduler(**SD15_SCHEDULER),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = pipe.to(device=device, dtype=dtype)
    for m in (pipe.unet, pipe.vae):
        m.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int):
    fn()  # warm-up: compilation, graph capture, allocator
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(args) -> dict:
    device = torch.device(args.device)
    smoke = args.smoke or device.type == "cpu"
    dtype = torch.float32 if device.type == "cpu" else getattr(torch, args.dtype)
    pipe = build_pipeline(smoke, device, dtype)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    g = torch.Generator().manual_seed(0)
    pe = torch.randn(1, 77, 768, generator=g).to(device, dtype)
    ne = torch.randn(1, 77, 768, generator=g).to(device, dtype)
    verifier = tts.verifiers.Function(lambda img: img.float().mean(dim=(1, 2, 3)))
    rows = []
    for guidance in args.guidance:
        cfg = guidance > 1
        for n in args.particles:
            nfe = n * args.steps

            def plain():
                return pipe(prompt_embeds=pe.expand(n, -1, -1), negative_prompt_embeds=ne.expand(n, -1, -1), num_inference_steps=args.steps,
                            guidance_scale=guidance, eta=1.0, output_type="latent",
                            generator=torch.Generator(device).manual_seed(0)).images

            sec, _ = timed(plain, device, args.repeats)
            base = nfe / sec
            rows.append(dict(setting="diffusers", backend="eager", guidance=guidance, particles=n, seconds=sec, nfe=nfe,
                             nfe_per_s=base, model_evals_per_s=base * (2 if cfg else 1), vs_diffusers=1.0))
            print(f"g={guidance} N={n:3d} diffusers          {base:8.1f} NFE/s", flush=True)
            for backend in args.backends:
                try:
                    model = tts.models.DiffusersModel(pipe, prompt_embeds=pe, negative_prompt_embeds=ne, guidance_scale=guidance,
                                                      backend=backend, max_batch=2 * n if cfg else n, decode_scale=args.decode_scale,
                                                      backend_options=({"mode": args.compile_mode} if backend == "compile" and args.compile_mode else None))
                except (ValueError, ImportError) as e:
                    rows.append(dict(setting="bfs_best", backend=backend, guidance=guidance, particles=n, skipped=str(e)))
                    print(f"g={guidance} N={n:3d} {backend:10s} skipped: {e}", flush=True)
                    continue
                if backend == "cudagraphs" and device.type != "cuda":
                    rows.append(dict(setting="bfs_best", backend=backend, guidance=guidance, particles=n, skipped="CUDA graphs need a CUDA device"))
                    continue
                x = torch.randn(n, *model.sample_shape, generator=g).to(device)
                t = torch.full((n,), float(model.schedule.grid(args.steps).timesteps[args.steps // 2]), device=device)
                c = torch.zeros(n, dtype=torch.int64, device=device)

                def network():
                    with torch.no_grad():
                        for _ in range(args.steps):
                            model(x, t, c)

                sec_m, _ = timed(network, device, args.repeats)
                rows.append(dict(setting="model", backend=backend, guidance=guidance, particles=n, seconds=sec_m, nfe=nfe,
                                 nfe_per_s=nfe / sec_m, model_evals_per_s=nfe / sec_m * (2 if cfg else 1), vs_diffusers=nfe / sec_m / base))

                def search():
                    return tts.search(model, verifier, "bfs_best", n_particles=n, num_steps=args.steps, seed=0, progress=False)

                sec_s, res = timed(search, device, args.repeats)
                prof = tts.search(model, verifier, "bfs_best", n_particles=n, num_steps=args.steps, seed=0, progress=False, profile=True)
                assert res.nfe.model == nfe
                rows.append(dict(setting="bfs_best", backend=backend, guidance=guidance, particles=n, seconds=sec_s, nfe=res.nfe.model,
                                 verifier_calls=res.nfe.verifier, cfg=res.nfe.cfg, nfe_per_s=nfe / sec_s,
                                 model_evals_per_s=res.nfe.model_evaluations / sec_s, vs_diffusers=nfe / sec_s / base,
                                 stage_seconds_profiled={k: round(v, 4) for k, v in prof.timings.items()}))
                print(f"g={guidance} N={n:3d} {backend:10s} model {nfe / sec_m:8.1f}  bfs_best {nfe / sec_s:8.1f} NFE/s "
                      f"({nfe / sec_s / base:.2f}x diffusers)", flush=True)
    return dict(
        benchmark="diffusers_throughput",
        cpu_smoke=smoke,
        note=("CPU smoke run on a tiny SD-shaped UNet: checks the harness, says nothing about GPU throughput" if smoke else
              "SD1.5 architecture, random weights"),
        model="tiny SD-shaped UNet" if smoke else "SD1.5 UNet + VAE (random weights)",
        image_size=size, dtype=str(dtype), steps=args.steps, decode_scale=args.decode_scale, repeats=args.repeats,
        verifier="mean of the decoded image (cheap; VAE decode of every particle at every step)",
        environment=environment(device), results=rows,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny UNet (always on CPU)")
    ap.add_argument("--particles", type=int, nargs="+", default=None, help="N values (default 4 8 16; smoke 2 4)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default 20; smoke 4)")
    ap.add_argument("--guidance", type=float, nargs="+", default=[7.5], help="guidance scales (1 = no CFG; default 7.5)")
    ap.add_argument("--backends", nargs="+", default=None, help="default: eager compile cudagraphs tensorrt (smoke: eager compile)")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode for the compile backend (default: torch's default)")
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--decode-scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs after the warm-up (the best is kept)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    smoke = args.smoke or args.device == "cpu"
    args.particles = args.particles or ([2, 4] if smoke else [4, 8, 16])
    args.steps = args.steps or (4 if smoke else 20)
    args.backends = args.backends or (["eager", "compile"] if smoke else ["eager", "compile", "cudagraphs", "tensorrt"])
    data = run(args)
    out = args.out or str(RESULTS / f"diffusers_throughput_{torch.device(args.device).type}.json")
    atomic_write_json(out, data)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
