"""DiffusersModel on tiny, randomly initialised SD-, SDXL- and FLUX-shaped stock pipelines (offline).

- plain sampling through the adapter reproduces the stock pipeline (DDIM eta=0 for SD/SDXL, the
  Euler scheduler for SDXL, the flow-matching Euler sampler for FLUX) from the same seed;
- every search method runs on every pipeline for 2 prompts x 3 particles, returns images of the
  right shape, counts NFE exactly (network rows = NFE x 2 with CFG) and repeats for the same seed;
- schedules read from the schedulers match the schedulers' own timesteps and sigmas;
- batching, chunking, embeddings, decoders, backends and bad input.
"""

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import tts_fast as tts  # noqa: E402
from tts_fast.models import backends  # noqa: E402
from tts_fast.models.diffusers import DiffusersModel, schedule_from_scheduler  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _tiny_diffusers import sd_scheduler, tiny_flux, tiny_sd, tiny_sdxl  # noqa: E402

PROMPTS = ["a red cube", "a blue dog"]
FLUX_KW = dict(height=32, width=32, max_sequence_length=16)


@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tiny_pipes"))


@pytest.fixture(scope="module")
def pipes(tmp_module):
    return {"sd": tiny_sd(tmp_module), "sdxl": tiny_sdxl(tmp_module, scheduler=sd_scheduler()), "flux": tiny_flux(tmp_module)}


def _model(pipes, kind, **kw):
    extra = FLUX_KW if kind == "flux" else {}
    return DiffusersModel(pipes[kind], PROMPTS, **{**extra, **kw})


class RowCounter:
    """Counts network rows (a CFG pair is two) by wrapping the UNet/transformer forward."""

    def __init__(self, model):
        self.rows = 0
        self.calls = 0
        net = model.network
        self._orig = net.forward

        def forward(*a, **k):
            x = k.get("hidden_states", a[0] if a else k.get("sample"))
            self.rows += x.shape[0]
            self.calls += 1
            return self._orig(*a, **k)

        net.forward = forward
        self._net = net

    def close(self):
        self._net.forward = self._orig


def _close(a, b, rel=1e-5):
    """Equal up to float rounding relative to the largest magnitude (x0 = (x - sigma eps) / alpha
    amplifies rounding by 1/alpha at the noisiest levels)."""
    a, b = a.detach(), b.detach()
    return a.shape == b.shape and float((a - b).abs().max()) <= rel * float(b.abs().max()) + 1e-6


def _mean_reward():
    return tts.verifiers.Function(lambda img, cond: img.mean(dim=(1, 2, 3)) + 0.01 * cond.float(), differentiable=True)


# ----------------------------------------------------------------------------------------------
# agreement with the stock pipelines


@pytest.mark.parametrize("kind", ["sd", "sdxl", "sdxl_euler", "flux"])
def test_plain_sampling_reproduces_stock_pipeline(pipes, tmp_module, kind):
    """bon with N=1 and eta=0 = the pipeline's deterministic sampler, from the same seed."""
    if kind == "sdxl_euler":
        pipe = tiny_sdxl(tmp_module)  # EulerDiscreteScheduler: Euler in sigma-space = DDIM(eta=0) in VP-space
    else:
        pipe = pipes[kind]
    extra = FLUX_KW if kind == "flux" else {}
    g = 3.5 if kind == "flux" else 6.0
    model = DiffusersModel(pipe, PROMPTS, guidance_scale=g, **extra)
    steps, seed = 4, 7
    call = dict(num_inference_steps=steps, guidance_scale=g, generator=torch.Generator().manual_seed(seed))
    if kind == "flux":
        call.update(height=32, width=32, max_sequence_length=16)
    elif kind != "sdxl_euler":
        call["eta"] = 0.0
    ref_latents = pipe(PROMPTS, output_type="latent", **call).images
    call["generator"] = torch.Generator().manual_seed(seed)
    ref_images = pipe(PROMPTS, output_type="pt", **call).images
    if kind == "flux":
        ref_latents = type(pipe)._unpack_latents(ref_latents, 32, 32, pipe.vae_scale_factor)
    result = tts.search(model, _mean_reward(), "bon", n_particles=1, num_steps=steps, seed=seed, eta=0.0, progress=False)
    scale = ref_latents.abs().max()
    assert (result.latents - ref_latents).abs().max() <= 2e-6 * scale + 1e-6
    assert result.samples.shape == ref_images.shape == (2, 3, 32, 32)
    assert (result.samples - ref_images).abs().max() < 1e-4
    assert result.nfe.model == 2 * steps and result.nfe.cfg == (kind != "flux")


# ----------------------------------------------------------------------------------------------
# every method on every pipeline

METHODS = list(tts.search.METHODS)
OPTIONS = {
    "zero_order": {"iterations": 1},
    "dfs": {"quantile": 0.5, "max_backtracks": 1},
    "local": {"local_steps": 2, "rho": 0.05},
    "dts": {"rollouts": 4},
    "dts_star": {"rollouts": 4, "slots": "fixed"},
}
FIXED_NFE = {m: 2 * 3 * 3 for m in ("bon", "bfs", "svdd", "das", "das_guided", "fk", "bfs_best")}
FIXED_NFE.update(zero_order=2 * (1 + 3) * 3, search_over_paths=None, local=2 * 3 * 3 * 2)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sd", "sdxl", "flux"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(pipes, kind, method):
    model = _model(pipes, kind)
    counter = RowCounter(model)
    try:
        kw = dict(n_particles=3, num_steps=3, seed=11, progress=False, **OPTIONS.get(method, {}))
        r1 = tts.search(model, _mean_reward(), method, **kw)
        rows = counter.rows
        r2 = tts.search(model, _mean_reward(), method, **kw)
    finally:
        counter.close()
    assert r1.samples.shape == (2, 3, 32, 32)
    assert float(r1.samples.min()) >= 0 and float(r1.samples.max()) <= 1
    assert r1.latents.shape == (2, *model.sample_shape) == (2, 4, 16, 16)
    assert r1.rewards.shape == (2,)
    # NFE: every network row is counted, a CFG pair once (flagged)
    assert model.cfg == (kind != "flux") and r1.nfe.cfg == model.cfg
    assert r1.nfe.model_evaluations == r1.nfe.model * (2 if model.cfg else 1)
    if OPTIONS.get(method, {}).get("slots") == "fixed":
        # fixed slots compute idle slots too, uncounted (DESIGN's counting rule): the network saw
        # every slot evaluation, more than the NFE
        computed = next(row for row in r1.trace if "slot_evaluations" in row)["slot_evaluations"]
        assert rows == computed * (2 if model.cfg else 1) > r1.nfe.model_evaluations
    else:
        assert rows == r1.nfe.model_evaluations
    assert int(r1.nfe_per_prompt.sum()) == r1.nfe.model
    expected = FIXED_NFE.get(method)
    if expected is not None:
        assert r1.nfe.model == expected
    if method == "local":
        assert r1.nfe.model_grad == r1.nfe.model  # rho != 0: every model call is differentiated
    # same seed, same result
    assert torch.equal(r1.latents, r2.latents) and torch.equal(r1.rewards, r2.rewards)
    assert r2.nfe == r1.nfe


# ----------------------------------------------------------------------------------------------
# the denoiser protocol


@pytest.mark.parametrize("kind", ["sd", "sdxl", "flux"])
def test_batch_of_mixed_prompts_and_timesteps_equals_single_calls(pipes, kind):
    """Particles of different prompts at different timesteps share one network call."""
    model = _model(pipes, kind)
    grid = model.schedule.grid(10)
    x = torch.randn(5, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    t = grid.timesteps[torch.tensor([0, 3, 3, 7, 9])].float()
    cond = torch.tensor([0, 1, 0, 1, 1])
    batched = model(x, t, cond)
    single = torch.cat([model(x[i : i + 1], t[i : i + 1], cond[i : i + 1]) for i in range(5)])
    assert batched.shape == x.shape and batched.dtype == torch.float32
    assert _close(batched, single)


@pytest.mark.parametrize("kind", ["sd", "flux"])
def test_max_batch_chunks_network_calls(pipes, kind):
    model = _model(pipes, kind)
    chunked = _model(pipes, kind, max_batch=4)
    x = torch.randn(5, *model.sample_shape, generator=torch.Generator().manual_seed(1))
    t = model.schedule.grid(5).timesteps[torch.tensor([0, 1, 2, 3, 4])].float()
    cond = torch.tensor([0, 0, 1, 1, 0])
    counter = RowCounter(chunked)
    try:
        out = chunked(x, t, cond)
    finally:
        counter.close()
    per_call = 4 // (2 if model.cfg else 1)
    assert counter.calls == -(-5 // per_call) and counter.rows == 5 * (2 if model.cfg else 1)
    assert _close(out, model(x, t, cond))


def test_cfg_flag_follows_guidance(pipes):
    assert _model(pipes, "sd", guidance_scale=7.5).cfg
    assert not _model(pipes, "sd", guidance_scale=1.0).cfg
    assert _model(pipes, "sdxl").cfg and _model(pipes, "sdxl").guidance_scale == 5.0
    flux = _model(pipes, "flux", guidance_scale=4.0)
    assert not flux.cfg and flux.distilled_guidance == 4.0
    true_cfg = _model(pipes, "flux", true_cfg_scale=2.0, negative_prompt="blurry")
    assert true_cfg.cfg
    r = tts.search(true_cfg, _mean_reward(), "bfs_best", n_particles=2, num_steps=2, progress=False)
    assert r.nfe.cfg and r.nfe.model == 8 and r.nfe.model_evaluations == 16


def test_guidance_rescale_changes_prediction(pipes):
    plain, rescaled = _model(pipes, "sd"), _model(pipes, "sd", guidance_rescale=0.7)
    x = torch.randn(2, *plain.sample_shape, generator=torch.Generator().manual_seed(2))
    t = torch.full((2,), 501.0)
    c = torch.tensor([0, 1])
    assert not torch.allclose(plain(x, t, c), rescaled(x, t, c))


@pytest.mark.parametrize("kind", ["sd", "sdxl", "flux"])
def test_precomputed_embeddings_equal_prompts(pipes, kind):
    model = _model(pipes, kind)
    pipe = pipes[kind]
    if kind == "sd":
        pe, ne = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
        emb = dict(prompt_embeds=pe, negative_prompt_embeds=ne)
    elif kind == "sdxl":
        pe, ne, ppe, npe = pipe.encode_prompt(PROMPTS, device="cpu")
        emb = dict(prompt_embeds=pe, negative_prompt_embeds=ne, pooled_prompt_embeds=ppe, negative_pooled_prompt_embeds=npe)
    else:
        pe, ppe, _ = pipe.encode_prompt(PROMPTS, device="cpu", max_sequence_length=16)
        emb = dict(prompt_embeds=pe, pooled_prompt_embeds=ppe)
    from_emb = DiffusersModel(pipe, **emb, **(FLUX_KW if kind == "flux" else {}))
    assert from_emb.num_prompts == 2
    x = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(3))
    t = model.schedule.grid(4).timesteps[:2].float()
    c = torch.tensor([1, 0])
    assert _close(from_emb(x, t, c), model(x, t, c))


def test_set_prompts_keeps_the_runner(pipes):
    model = _model(pipes, "sd", backend="compile", backend_options={"backend": "eager"})
    runner = model.runner
    model.set_prompts(["one prompt", "two", "three"])
    assert model.num_prompts == 3 and model.runner is runner
    r = tts.search(model, _mean_reward(), "bon", n_particles=1, num_steps=2, progress=False)
    assert r.samples.shape == (3, 3, 32, 32)


# ----------------------------------------------------------------------------------------------
# schedules from schedulers


@pytest.mark.parametrize("spacing,offset", [("leading", 1), ("leading", 0), ("trailing", 0), ("linspace", 0)])
@pytest.mark.parametrize("steps", [1, 7, 50])
def test_vp_grid_matches_scheduler_timesteps(spacing, offset, steps):
    if spacing == "linspace" and steps == 1:
        pytest.skip("diffusers' linspace spacing puts a single step at t=0; tts_fast keeps it at T-1 (documented)")
    sched = sd_scheduler(timestep_spacing=spacing, steps_offset=offset)
    schedule, pred = schedule_from_scheduler(sched)
    sched.set_timesteps(steps)
    assert pred == "epsilon"
    assert schedule.grid(steps).timesteps.long().tolist() == sched.timesteps.tolist()
    ab = sched.alphas_cumprod.double()
    assert torch.allclose(schedule.alpha_bar, ab, rtol=1e-5)


@pytest.mark.parametrize("size", [(32, 32), (512, 512), (1024, 1024), (768, 1360)])
def test_flux_dynamic_shift_matches_scheduler_sigmas(pipes, size):
    """FlowSchedule(shift = e^mu) gives FluxPipeline's sigmas at the model's resolution."""
    import numpy as np
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    pipe = pipes["flux"]
    h, w = size
    seq = (h // (2 * pipe.vae_scale_factor)) * (w // (2 * pipe.vae_scale_factor))
    schedule, pred = schedule_from_scheduler(pipe.scheduler, image_seq_len=seq)
    cfg = pipe.scheduler.config
    mu = calculate_shift(seq, cfg.base_image_seq_len, cfg.max_image_seq_len, cfg.base_shift, cfg.max_shift)
    pipe.scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / 8, 8), mu=mu)
    grid = schedule.grid(8)
    assert pred == "flow"
    assert torch.allclose(grid.sigma.float(), pipe.scheduler.sigmas, atol=1e-6)
    assert torch.allclose(grid.timesteps.float(), pipe.scheduler.timesteps, atol=1e-3)


def test_v_prediction_and_sample_parameterisations(pipes, tmp_module):
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([999.0, 401.0])
    c = torch.tensor([0, 1])
    outs = {}
    for pred in ("epsilon", "v_prediction", "sample"):
        pipe = tiny_sd(tmp_module, scheduler=sd_scheduler(prediction_type=pred))
        model = DiffusersModel(pipe, PROMPTS, guidance_scale=1.0)
        assert model.prediction_type == pred
        raw = pipe.unet(x, t, encoder_hidden_states=model._table["encoder_hidden_states"][c]).sample
        a, s = (v.float().reshape(-1, 1, 1, 1) for v in model.schedule.alpha_sigma(t))
        expect = {"epsilon": (x - s * raw) / a, "v_prediction": a * x - s * raw, "sample": raw}[pred]
        outs[pred] = model(x, t, c)
        assert _close(outs[pred], expect)


def test_unsupported_scheduler_options_are_refused(pipes):
    from diffusers import FlowMatchEulerDiscreteScheduler

    with pytest.raises(ValueError, match="use_karras_sigmas"):
        schedule_from_scheduler(FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True))
    with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
        schedule_from_scheduler(sd_scheduler(rescale_betas_zero_snr=True))
    with pytest.raises(ValueError, match="image_seq_len"):
        schedule_from_scheduler(pipes["flux"].scheduler)


# ----------------------------------------------------------------------------------------------
# decoding


def test_decode_full_scaled_and_tiny_decoder(pipes):
    from diffusers import AutoencoderTiny

    model = _model(pipes, "sd")
    z = torch.randn(3, *model.sample_shape, generator=torch.Generator().manual_seed(5))
    img = model.decode(z)
    assert img.shape == (3, 3, 32, 32) and float(img.min()) >= 0 and float(img.max()) <= 1
    assert torch.equal(img, model.decode_full(z))
    half = _model(pipes, "sd", decode_scale=0.5, decode_batch=2)
    assert half.decode(z).shape == (3, 3, 16, 16) and half.decode_full(z).shape == (3, 3, 32, 32)
    torch.manual_seed(0)
    tiny = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                           num_decoder_blocks=(1, 1), latent_channels=4, upsampling_scaling_factor=2).eval()
    cheap = _model(pipes, "sd", decoder=tiny)
    calls = []
    tiny.register_forward_pre_hook(lambda *a: calls.append(1))
    orig = tiny.decode
    tiny.decode = lambda *a, **k: (calls.append(1), orig(*a, **k))[1]
    assert cheap.decode(z).shape == (3, 3, 32, 32) and calls
    n = len(calls)
    cheap.decode_full(z)
    assert len(calls) == n  # the full decode never uses the cheap decoder
    # gradients flow through the VAE (local search with image verifiers)
    zg = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.decode(zg).sum(), zg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_flux_decode_uses_scale_and_shift(pipes):
    model = _model(pipes, "flux")
    vae = pipes["flux"].vae
    z = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(6))
    ref = vae.decode(z / vae.config.scaling_factor + vae.config.shift_factor).sample
    assert torch.allclose(model.decode(z), (ref / 2 + 0.5).clamp(0, 1), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# backends


def test_backend_compile_matches_eager(pipes):
    eager = _model(pipes, "sd")
    comp = _model(pipes, "sd", backend="compile", backend_options={"backend": "aot_eager"}, max_batch=8)
    x = torch.randn(3, *eager.sample_shape, generator=torch.Generator().manual_seed(7))
    t = torch.tensor([981.0, 501.0, 1.0])
    c = torch.tensor([0, 1, 1])
    assert _close(comp(x, t, c), eager(x, t, c))
    assert comp.runner.calls == {8: 1}  # 6 rows (CFG) padded to the slot of 8


@pytest.mark.slow
def test_backend_compile_inductor_on_cpu(pipes):
    eager = _model(pipes, "flux")
    comp = _model(pipes, "flux", backend="compile", slots=(2, 4))
    x = torch.randn(3, *eager.sample_shape, generator=torch.Generator().manual_seed(8))
    t = torch.tensor([1000.0, 600.0, 100.0])
    c = torch.tensor([0, 1, 0])
    assert _close(comp(x, t, c), eager(x, t, c), rel=1e-4)


def _fake_capture(log):
    """A stand-in for CUDA-graph capture: records captures, replays by calling on the static buffers."""

    def capture(call, static):
        log.append({k: v.shape[0] for k, v in static.items()})
        out = {}

        def replay():
            out["y"] = call(**static)
            return out["y"]

        return replay

    return capture


def test_cudagraph_slots_pad_and_stay_valid_across_resampling(pipes):
    log = []
    eager = _model(pipes, "sd")
    graphed = _model(pipes, "sd", backend="cudagraphs", slots=(2, 4, 8), backend_options={"capture": _fake_capture(log)})
    v = _mean_reward()
    r_eager = tts.search(eager, v, "bfs_best", n_particles=3, num_steps=3, seed=1, progress=False)
    r_graph = tts.search(graphed, v, "bfs_best", n_particles=3, num_steps=3, seed=1, progress=False)
    assert _close(r_graph.latents, r_eager.latents)
    # 2 prompts x 3 particles x CFG = 12 rows -> chunks of 8 + 4: two graphs, captured once each
    assert sorted(e["x"] for e in log) == [4, 8]
    assert graphed.runner.calls == {8: 3, 4: 3}
    assert len(graphed.runner.graphs) == 2


def test_slot_runner_padding_logic():
    seen = []

    def fn(x, t, c):
        seen.append(x.shape[0])
        return x * 2 + t[:, None] + c

    r = backends.SlotRunner(fn, slots=(1, 2, 4))
    x = torch.arange(7.0)[:, None]
    t = torch.arange(7.0)
    out = r(x, t, {"c": torch.ones(7, 1)})
    assert torch.equal(out, x * 2 + t[:, None] + 1)
    assert seen == [4, 4] and r.calls == {4: 2}  # 7 rows = 4 + (3 padded to 4)
    assert backends.default_slots(12) == (1, 2, 4, 8, 12)
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.make_runner("xla", fn)
    with pytest.raises(ValueError, match="exceeds max_batch"):
        backends.make_runner("compile", fn, max_batch=4, slots=(8,))


def test_cudagraphs_needs_cuda_and_falls_back_for_autograd(pipes):
    model = _model(pipes, "sd", backend="cudagraphs", slots=(4,))
    x = torch.randn(2, *model.sample_shape)
    t = torch.tensor([981.0, 21.0])
    c = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="CUDA device"):
        model(x, t, c)
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(xg, t, c)  # autograd: runs eagerly, no capture
        (g,) = torch.autograd.grad(out.sum(), xg)
    assert torch.isfinite(g).all()


def test_tensorrt_backend_without_torch_tensorrt(pipes):
    try:
        import torch_tensorrt  # noqa: F401

        pytest.skip("torch-tensorrt is installed")
    except ImportError:
        pass
    with pytest.raises(ValueError, match=r"tts_fast\[tensorrt\]"):
        _model(pipes, "sd", backend="tensorrt")


# ----------------------------------------------------------------------------------------------
# bad input, loading, imports


def test_bad_input(pipes):
    model = _model(pipes, "sd")
    x = torch.randn(2, *model.sample_shape)
    t = torch.tensor([981.0, 1.0])
    with pytest.raises(ValueError, match="cond"):
        model(x, t, None)
    with pytest.raises(ValueError, match="prompt rows outside"):
        model(x, t, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="x_t must be"):
        model(torch.randn(2, 4, 8, 8), t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"x0 must be latents"):
        model.decode(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x0 must be latents"):
        model.decode_full(torch.randn(4, 3, 3))
    with pytest.raises(ValueError, match="needs prompts"):
        DiffusersModel(pipes["sd"])
    with pytest.raises(ValueError, match="multiples"):
        DiffusersModel(pipes["flux"], PROMPTS, height=30, width=32)
    with pytest.raises(ValueError, match="true_cfg_scale"):
        DiffusersModel(pipes["sd"], PROMPTS, true_cfg_scale=2.0)
    with pytest.raises(ValueError, match="max_batch"):
        DiffusersModel(pipes["sd"], PROMPTS, max_batch=1)
    with pytest.raises(TypeError, match="StableDiffusionPipeline"):
        DiffusersModel(object(), PROMPTS)
    with pytest.raises(OSError, match="diffusers layout"):
        DiffusersModel(os.path.join(os.sep, "nonexistent", "pipeline"), PROMPTS)


@pytest.mark.parametrize("name, value, match", [
    ("guidance_scale", float("nan"), "guidance_scale"),
    ("guidance_scale", -1.0, "guidance_scale"),
    ("guidance_scale", float("inf"), "guidance_scale"),
    ("height", -32, "height"),
    ("height", 0, "height"),
    ("width", 32.0, "width"),
    ("width", True, "width"),
    ("guidance_rescale", float("nan"), "guidance_rescale"),
    ("guidance_rescale", 1.5, "guidance_rescale"),
    ("true_cfg_scale", float("nan"), "true_cfg_scale"),
    ("decode_scale", float("inf"), "decode_scale"),
    ("decode_scale", 0.0, "decode_scale"),
    ("max_batch", True, "max_batch"),
    ("decode_batch", 0, "decode_batch"),
    ("max_sequence_length", 0, "max_sequence_length"),
    ("backend", "fast", "backend"),
    ("original_size", (32, -1), "original_size"),
    ("crops_coords_top_left", (0.5, 0), "crops_coords_top_left"),
    ("encode_kwargs", ["clip_skip"], "encode_kwargs"),
    ("slots", [1, 2.5], "slots"),
    ("backend_options", "max-autotune", "backend_options"),
])
def test_nonsense_options_are_refused_before_any_work(pipes, name, value, match):
    """Each bad option names itself, and is refused before a pipeline is loaded (a path that does
    not exist is never opened) or a prompt encoded."""
    with pytest.raises(ValueError, match=match):
        DiffusersModel(os.path.join(os.sep, "nonexistent", "pipeline") if name not in ("slots", "backend_options") else pipes["sd"],
                       PROMPTS, **{name: value})


def test_options_that_would_be_ignored_are_refused(pipes):
    """guidance off (<= 1, diffusers' convention) takes no negative prompt nor rescale; SDXL-only
    micro-conditioning and non-multiples of the VAE factor are refused; guidance 0 is accepted."""
    with pytest.raises(ValueError, match="negative_prompt"):
        DiffusersModel(pipes["sd"], PROMPTS, guidance_scale=1.0, negative_prompt="blurry")
    with pytest.raises(ValueError, match="negative_prompt"):
        DiffusersModel(pipes["flux"], PROMPTS, negative_prompt="blurry", **FLUX_KW)
    with pytest.raises(ValueError, match="guidance_rescale"):
        DiffusersModel(pipes["sd"], PROMPTS, guidance_scale=1.0, guidance_rescale=0.7)
    with pytest.raises(ValueError, match="original_size"):
        DiffusersModel(pipes["sd"], PROMPTS, original_size=(64, 64))
    with pytest.raises(ValueError, match="multiples"):
        DiffusersModel(pipes["sd"], PROMPTS, height=33)
    m = DiffusersModel(pipes["sd"], PROMPTS, guidance_scale=0.0)
    assert not m.cfg and m.guidance_scale == 0.0
    m = DiffusersModel(pipes["sd"], PROMPTS, guidance_scale=3.0)
    with pytest.raises(ValueError, match="unknown argument"):
        m.set_prompts(PROMPTS, negative_prompts="x")


def test_prompt_rows_on_a_device_are_checked_without_a_host_read(pipes):
    """On a device the range check of cond is recorded for the run's one host read (the meta device
    stands in for a GPU: reading its values raises), and the rows are clamped in range meanwhile."""
    from tts_fast._device_checks import Collector, collect

    model = _model(pipes, "sd")
    col = Collector()
    model.device = torch.device("meta")  # where the rows are used
    with collect(col):
        rows = model._rows(torch.tensor([0, 2], device="meta"), 2)
    assert rows.device.type == "meta" and rows.shape == (2,)
    assert any("cond holds prompt rows outside [0, 2) (this DiffusersModel)" in m for m in col._flags)


def test_loads_a_saved_pipeline_folder(pipes, tmp_path):
    pipes["sd"].save_pretrained(tmp_path / "sd")
    model = DiffusersModel(str(tmp_path / "sd"), PROMPTS)
    ref = _model(pipes, "sd")
    x = torch.randn(2, *ref.sample_shape)
    t = torch.tensor([981.0, 1.0])
    c = torch.tensor([0, 1])
    assert _close(model(x, t, c), ref(x, t, c))


def test_import_tts_fast_does_not_import_diffusers():
    code = "import sys, tts_fast; assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_missing_extra_names_what_to_install():
    code = (
        "import sys; sys.modules['diffusers'] = None\n"
        "import tts_fast as tts\n"
        "try:\n    tts.models.DiffusersModel('x', ['p'])\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install --no-build-isolation 'tts_fast[diffusers]'" in out.stdout, out.stdout + out.stderr


def test_low_precision_network_keeps_float32_search_state(tmp_module):
    """A bf16 pipeline: inputs cast to the network dtype, x0 and images in float32; an fp16 VAE with
    force_upcast is run in float32 (as SDXL's pipeline does)."""
    pipe = tiny_sd(tmp_module)
    ref = DiffusersModel(pipe, PROMPTS)
    x = torch.randn(2, *ref.sample_shape, generator=torch.Generator().manual_seed(9))
    t, c = torch.tensor([501.0, 21.0]), torch.tensor([0, 1])
    with torch.no_grad():
        expect = ref(x, t, c)
    pipe.to(torch.bfloat16)
    low = DiffusersModel(pipe, PROMPTS)
    with torch.no_grad():
        out = low(x, t, c)
    assert low.net_dtype == torch.bfloat16 and out.dtype == torch.float32
    assert float((out - expect).abs().max()) < 0.1 * float(expect.abs().max())
    pipe.vae.register_to_config(force_upcast=True)
    pipe.vae.to(torch.float16)
    DiffusersModel(pipe, PROMPTS)
    assert pipe.vae.dtype == torch.float32
    r = tts.search(low, _mean_reward(), "fk", n_particles=2, num_steps=2, progress=False)
    assert r.samples.dtype == r.latents.dtype == torch.float32


# ----------------------------------------------------------------------------------------------
# details a single bug would break (each test names the broken variant)


def test_sdxl_second_prompts_reach_the_second_encoder(pipes):
    """Broken variant: prompts_2 not passed to SDXL's encoder (the second text encoder then reads
    the first prompts)."""
    same = _model(pipes, "sdxl")
    other = _model(pipes, "sdxl", prompts_2=["an oil painting", "a pencil sketch"])
    assert set(same._table) == set(other._table)
    assert any(not torch.allclose(same._table[k], other._table[k]) for k in same._table)


def test_flux_guidance_and_its_refusals(pipes):
    """Broken variants: the CFG mix scale of a FLUX model without true CFG not 1; SDXL
    micro-conditioning refused under another family's name; the negative embeddings' shape
    message lost."""
    m = _model(pipes, "flux")
    assert (m.cfg, m.guidance_scale) == (False, 1.0) and "guidance_scale=1.0" in repr(m)
    with pytest.raises(ValueError, match="original_size: SDXL micro-conditioning, not an option of flux pipelines"):
        _model(pipes, "flux", original_size=(32, 32))
    pe, ppe, _ = pipes["flux"].encode_prompt(PROMPTS, device="cpu", max_sequence_length=16)
    with pytest.raises(ValueError, match=r"negative prompt embeddings \(2, 3, .*\) must match the prompt embeddings \(2, 16, "):
        DiffusersModel(pipes["flux"], prompt_embeds=pe, pooled_prompt_embeds=ppe, true_cfg_scale=2.0,
                       negative_prompt_embeds=pe[:, :3], negative_pooled_prompt_embeds=ppe, **FLUX_KW)


@pytest.mark.parametrize("name", ["sd15", "sdxl", "flux"])
def test_random_architectures_build_and_denoise(name):
    """Broken variants: the FLUX scheduler's configuration not found, SDXL's pooled embeddings
    left out of the random prompt embeddings (its UNet then fails), each only visible when the
    published architectures (random weights, as the profiler builds them) actually run."""
    from tts_fast.models.architectures import random_embeddings, random_model

    emb = random_embeddings(name, 2, smoke=True)
    assert ("pooled_prompt_embeds" in emb) == (name != "sd15")
    model = random_model(name, 2, smoke=True)
    x = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    t = model.schedule.grid(4).timesteps[:2].float()
    out = model(x, t, torch.tensor([0, 1]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_unsupported_networks_are_named(tmp_module):
    """Broken variants (a fresh models sample): the LCM UNet's and the VAE-less pipeline's messages
    lost or garbled."""
    pipe = tiny_sd(tmp_module)
    pipe.unet.register_to_config(time_cond_proj_dim=8)
    with pytest.raises(ValueError, match=r"^this UNet takes a guidance-scale embedding \(time_cond_proj_dim is set: an LCM-distilled model\)"):
        DiffusersModel(pipe, PROMPTS)
    pipe = tiny_sd(tmp_module)
    pipe.vae = None
    with pytest.raises(ValueError, match=r"^the pipeline has no VAE: DiffusersModel decodes latents with pipe.vae$"):
        DiffusersModel(pipe, PROMPTS)


def test_second_prompt_lists_of_the_wrong_length_are_named(pipes):
    """Broken variants (a fresh models sample, seed 23): FLUX's prompts_2 checked under the name None
    (the message then reads "None must be ..."); SDXL's negative_prompt_2 checked without its name."""
    one = r" must be a string or a list of 2 strings \(one per prompt\)$"
    with pytest.raises(ValueError, match="^prompts_2" + one):
        _model(pipes, "flux", prompts_2=["a single prompt"])
    with pytest.raises(ValueError, match="^prompts_2" + one):
        _model(pipes, "sdxl", prompts_2=["a single prompt"])
    with pytest.raises(ValueError, match="^negative_prompt_2" + one):
        _model(pipes, "sdxl", negative_prompt_2=["blurry"])
    with pytest.raises(ValueError, match="^negative_prompt_2" + one):
        _model(pipes, "flux", true_cfg_scale=2.0, negative_prompt="blurry", negative_prompt_2=["blurry"])


def test_pipeline_kind_by_the_unets_added_conditioning_and_flux_default_size(pipes):
    """Broken variants (a fresh models sample, seed 23, skip 20): an SDXL-conditioned UNet
    ('text_time') in a pipeline without 'XL' in its name or a second text encoder not recognised
    ('TEXT_TIME' compared); FLUX's default sample size without the pipeline's attribute taken as 129
    latent pixels instead of diffusers' 128."""
    from types import SimpleNamespace

    from tts_fast.models._flux import FluxAdapter
    from tts_fast.models.diffusers import _pipeline_kind

    unet = lambda kind: SimpleNamespace(config=SimpleNamespace(addition_embed_type=kind))  # noqa: E731
    assert _pipeline_kind(SimpleNamespace(unet=unet("text_time"))) == "sdxl"
    assert _pipeline_kind(SimpleNamespace(unet=unet(None))) == "sd"
    adapter = DiffusersModel(pipes["flux"], PROMPTS, **FLUX_KW)._adapter
    assert isinstance(adapter, FluxAdapter)
    f = adapter.vae_scale_factor
    assert adapter.default_size() == (pipes["flux"].default_sample_size * f,) * 2
    adapter.pipe = SimpleNamespace(**{k: v for k, v in vars(pipes["flux"]).items() if k != "default_sample_size"})
    assert adapter.default_size() == (128 * f, 128 * f)


def test_sdxl_refuses_another_familys_options_by_its_own_name(pipes):
    """Broken variant: SDXL's encode naming the family None in its refusal of options it does not take
    (called on the adapter: DiffusersModel only hands it SDXL's own options)."""
    adapter = _model(pipes, "sdxl")._adapter
    with pytest.raises(ValueError, match=r"^option\(s\) \['guidance'\] do not apply to sdxl pipelines$"):
        adapter.encode(PROMPTS, cfg=True, negative_prompt=None, prompt_embeds=None, negative_prompt_embeds=None, device="cpu",
                       encode_kwargs={}, guidance=3.5)


def test_set_prompts_takes_a_new_negative_prompt(pipes):
    """Broken variant: set_prompts reading the negative prompt under the key None: a new negative
    prompt while classifier-free guidance is off is then let through (silently unused) instead of
    refused. With guidance on, the new negative prompt replaces the old one."""
    off = _model(pipes, "sd", guidance_scale=1.0)
    with pytest.raises(ValueError, match=r"^negative_prompt would be ignored: classifier-free guidance is off \(guidance_scale=1.0 <= 1\)$"):
        off.set_prompts(PROMPTS, negative_prompt="a photo of a cat")
    m = _model(pipes, "sd", negative_prompt="blurry")
    m.set_prompts(PROMPTS, negative_prompt="a photo of a cat")
    fresh = _model(pipes, "sd", negative_prompt="a photo of a cat")
    old = _model(pipes, "sd", negative_prompt="blurry")
    x = torch.randn(2, *m.sample_shape, generator=torch.Generator().manual_seed(3))
    t, c = torch.tensor([801.0, 301.0]), torch.tensor([0, 1])
    assert torch.equal(m(x, t, c), fresh(x, t, c)) and not torch.allclose(m(x, t, c), old(x, t, c))
