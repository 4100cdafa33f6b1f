"""``tts_fast.search``: one entry point over every method."""

from __future__ import annotations

import dataclasses
import time
from typing import Optional, Union

import torch

from .._device_checks import collect
from ..models.base import Denoiser
from .counting import Timers
from ..verifiers.base import Verifier
from . import presets
from ._checks import check_int
from .bfs import BFS
from .das import DAS
from .dfs import DFS
from .dts import DTS
from .engine import Context, SearchResult
from .local import LocalSearch
from .noise import BestOfN, SearchOverPaths, ZeroOrder

_FACTORIES = {
    "bon": BestOfN,
    "zero_order": ZeroOrder,
    "search_over_paths": SearchOverPaths,
    "bfs": BFS,
    "svdd": presets.svdd,
    "das": presets.das,
    "das_guided": presets.das_guided,
    "fk": presets.fk,
    "bfs_best": presets.bfs_best,
    "bfs_auto": presets.bfs_auto,
    "dfs": DFS,
    "dts": presets.dts,
    "dts_star": presets.dts_star,
    "local": LocalSearch,
    "local_auto": presets.local_auto,
}
METHODS = tuple(_FACTORIES)
_BFS_PRESETS = ("svdd", "das", "fk", "bfs_best", "bfs_auto")
_LOCAL_NAMES = ("local", "local_auto")
_PRESET_CLASSES = {**{name: BFS for name in _BFS_PRESETS}, "das_guided": DAS, "dts": DTS, "dts_star": DTS}
_CLASSES = (BestOfN, ZeroOrder, SearchOverPaths, BFS, DAS, DFS, DTS, LocalSearch)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"local"}


def resolve_method(method, options: dict):
    """The method object and its LocalSearch (or None) from a name or object plus keyword options.

    Options that are fields of the method go to the method; fields of LocalSearch (local_steps,
    rho, mu, sigma, ...) build the local search that runs at every level (joint scaling).
    """
    local_fields = _field_names(LocalSearch)
    if isinstance(method, str):
        if method not in _FACTORIES:
            raise ValueError(f"method must be one of {', '.join(METHODS)} or a method object; got {method!r}")
        cls = LocalSearch if method in _LOCAL_NAMES else _PRESET_CLASSES.get(method, _FACTORIES[method])
        own = {k: v for k, v in options.items() if k in _field_names(cls)}
        loc = {k: v for k, v in options.items() if k not in own and k in local_fields}
        unknown = sorted(set(options) - set(own) - set(loc))
        if unknown:
            allowed = sorted(_field_names(cls) | local_fields)
            raise ValueError(f"unknown option(s) {unknown} for method {method!r}; allowed: {', '.join(allowed)}")
        obj = _FACTORIES[method](**own)
        if method in _LOCAL_NAMES:
            return obj, obj
        local = _joined(LocalSearch(**loc)) if loc else None
        return dataclasses.replace(obj, local=local) if local is not None else obj, local
    if not isinstance(method, _CLASSES):
        raise TypeError(f"method must be a name ({', '.join(METHODS)}) or one of {[c.__name__ for c in _CLASSES]}, got {type(method).__name__}")
    if isinstance(method, LocalSearch):
        if options:
            raise ValueError(f"options {sorted(options)} given with a LocalSearch object: set them on the object")
        return method, method
    unknown = sorted(set(options) - local_fields)
    if unknown:
        raise ValueError(f"with a method object, keyword options may only configure local search ({', '.join(sorted(local_fields))}); got {unknown}")
    if options and method.local is not None:
        raise ValueError("the method object already has a LocalSearch; do not pass local-search options too")
    local = LocalSearch(**options) if options else method.local
    if local is not None:
        _joined(local)
    return (dataclasses.replace(method, local=local) if local is not method.local else method), local


def _joined(local: LocalSearch) -> LocalSearch:
    """A LocalSearch that runs at every level of a global method: it must change something there,
    and its own sampler eta (used only when it runs alone) must not be set."""
    if not local.acts:
        raise ValueError("local search at every level with local_steps = 1 and rho = mu = 0 changes nothing: "
                         "set local_steps > 1 (recurrence), rho or mu")
    if local.eta != 1.0:
        raise ValueError(f"eta={local.eta!r} of the local search is its sampler's when it runs alone; joined to a global "
                         "method the steps follow that method's eta: set eta on the method")
    return local


def _prompt_count(model, verifier, local_verifier):
    """(prompt rows, who holds them) agreed by model, verifier and local verifier; (None, None) if none holds any.

    A holder with ``num_prompts`` None serves any row; all the others must hold the same number.
    """
    holders = [("the model", model), ("the verifier", verifier), ("the local_verifier", local_verifier)]
    known = [(who, int(h.num_prompts)) for who, h in holders if h is not None and getattr(h, "num_prompts", None) is not None]
    for who, p in known[1:]:
        if p != known[0][1]:
            raise ValueError(
                f"{known[0][0]} holds {known[0][1]} prompt rows but {who} holds {p}: "
                "model, verifier and local_verifier must agree on the prompts (one row each)"
            )
    return (known[0][1], known[0][0]) if known else (None, None)


def search(
    model: Denoiser,
    verifier: Verifier,
    method: Union[str, object],
    *,
    n_particles: int,
    num_steps: int,
    batch_size: Optional[int] = None,
    seed: int = 0,
    local_verifier: Optional[Verifier] = None,
    budget: Optional[int] = None,
    progress: bool = True,
    profile: bool = False,
    **method_options,
) -> SearchResult:
    """Spend sampling compute to find samples the verifier likes.

    Args:
        model: a :class:`tts_fast.Denoiser` (x0 = model(x_t, t, cond)).
        verifier: a :class:`tts_fast.Verifier`; selects (resampling weights, thresholds, final pick).
        method: 'bon', 'zero_order', 'search_over_paths', 'bfs', 'svdd', 'das', 'das_guided', 'fk',
            'bfs_best', 'bfs_auto', 'dfs', 'dts', 'dts_star', 'local', 'local_auto', or a method
            object (BestOfN, ZeroOrder, SearchOverPaths, BFS, DAS, DFS, DTS, LocalSearch).
        n_particles: particles (BFS), samples (best-of-N), neighbours (zero-order), paths (search
            over paths), walkers (DFS) or rollouts in flight per tree (DTS) per prompt.
        num_steps: model calls of one trajectory (the sampling grid).
        batch_size: prompt rows searched together. When the model or a verifier holds prompts
            (``num_prompts``), they must agree and batch_size must equal that count (the default);
            otherwise (unconditional model, shared targets) batch_size independent rows, default 1.
        seed: seeds the run's generator; the same seed gives the same result.
        local_verifier: the second verifier of the dual-verifier scheme: gradients of local search
            come from it, selection from ``verifier``.
        budget: cap on model NFE for the whole call (each prompt gets budget // batch_size); never
            exceeded. Fixed-cost plans above it are refused; DFS, DTS and zero-order search adapt to it.
        progress: show a progress bar (in model NFE).
        profile: synchronise the device around stages so that ``timings`` are exact.
        **method_options: fields of the method (e.g. temperature=..., lam=...) and of LocalSearch
            (local_steps, rho, mu, sigma, ...) to run local search at every level.

    Returns:
        A :class:`SearchResult` (samples [B, ...], rewards [B], particles [B, N, ...], log_weights,
        nfe, nfe_per_prompt, timings, trace).
    """
    batch_size, method_obj, local = _check_call(model=model, verifier=verifier, local_verifier=local_verifier, method=method,
                                                method_options=method_options, n_particles=n_particles, num_steps=num_steps,
                                                batch_size=batch_size, seed=seed, budget=budget)
    grid = model.schedule.grid(num_steps)
    timers = Timers(sync=profile)
    ctx = Context(
        model, verifier, local_verifier, grid, batch_size=batch_size, n_particles=n_particles, seed=seed,
        budget=budget, progress=None, local=local, timers=timers,
    )
    runner = BestOfN(eta=method_obj.eta) if isinstance(method_obj, LocalSearch) else method_obj
    planned = runner.cost(ctx)
    if planned is not None:
        ctx.check_cost(planned, f"{method_obj.name} with n_particles={n_particles}, num_steps={num_steps}")
    # The bar counts model NFE; its total is the plan of a fixed-cost method, else the budget (a cap),
    # and at the end what the run really spent.
    bar = _progress_bar(progress, planned * batch_size if planned is not None else budget)
    ctx.progress = bar
    t0 = time.perf_counter()
    try:
        with torch.no_grad(), collect(ctx.checks):
            result = runner.run(ctx)
        ctx.counter.settle()  # result.nfe is the counter's NFE: fixed-slot counts are read here, once
        _end_bar(bar, ctx.counter.nfe.model)
    finally:
        if bar is not None:
            bar.close()
    ctx.read_checks()
    if profile and ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    if budget is not None and result.nfe.model > budget:
        raise RuntimeError(f"internal error: {method_obj.name} spent {result.nfe.model} model NFE over budget={budget}")
    result.timings = dict(timers.seconds, total=time.perf_counter() - t0)
    result.trace = ctx.trace.finalize()
    result.method = method_obj
    return result


def _check_call(*, model, verifier, local_verifier, method, method_options: dict, n_particles, num_steps, batch_size, seed,
                budget) -> tuple:
    """Every check of :func:`search`'s arguments that needs no model call, in the order the errors name them.

    Returns (batch_size, the method object, the LocalSearch attached or None).
    """
    if not callable(model) or not hasattr(model, "schedule") or not hasattr(model, "sample_shape"):
        raise TypeError("model must be a tts_fast.Denoiser (callable with .schedule and .sample_shape)")
    if not isinstance(verifier, Verifier):
        raise TypeError("verifier must be a tts_fast.Verifier; wrap a function with tts_fast.verifiers.Function(fn)")
    if local_verifier is not None and not isinstance(local_verifier, Verifier):
        raise TypeError("local_verifier must be a tts_fast.Verifier or None")
    check_int(n_particles, "n_particles", 1)
    check_int(num_steps, "num_steps", 1)
    num_prompts, holder = _prompt_count(model, verifier, local_verifier)
    if batch_size is None:
        batch_size = num_prompts or 1
    check_int(batch_size, "batch_size", 1)
    if num_prompts is not None and batch_size != num_prompts:
        raise ValueError(
            f"batch_size={batch_size} but {holder} holds {num_prompts} prompt rows: every row is searched, so batch_size "
            f"must be {num_prompts} (or left out); to search fewer prompts, build the model and verifier with those"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if budget is not None:
        check_int(budget, "budget", 1)
    method_obj, local = resolve_method(method, dict(method_options))
    if local_verifier is not None and (local is None or not local.needs_gradient):
        raise ValueError(
            "local_verifier supplies the gradients of local search, but this search takes none: "
            "add local-search options with a gradient (rho=... or mu=...), or drop local_verifier"
        )
    if local is not None and local.needs_gradient:
        grad_source = local_verifier or verifier
        if not grad_source.differentiable:
            raise ValueError(
                f"local search with rho/mu needs gradients, but {type(grad_source).__name__} is not differentiable; "
                "pass a differentiable local_verifier"
            )
    steps_cost = 1 if local is None else local.local_steps
    if budget is not None and budget // batch_size < num_steps * steps_cost:
        raise ValueError(
            f"budget={budget} is too small for one sample per prompt: one trajectory costs "
            f"{num_steps * steps_cost} model NFE (num_steps x local_steps) for each of {batch_size} prompts"
        )
    return batch_size, method_obj, local


def _progress_bar(enabled: bool, total):
    """A tqdm bar of model NFE (None when not ``enabled``); ``total``: the plan or the budget, or None."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="nfe", desc="search", leave=False)


def _end_bar(bar, spent: int) -> None:
    """The bar at the end of a run: its count and its total are the model NFE really spent."""
    if bar is None:
        return
    bar.update(spent - bar.n)
    bar.total = spent
    bar.refresh()
