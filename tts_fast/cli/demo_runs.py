"""The searches of ``tts-fast demo``: in this process, or spread over worker processes.

Every search of the demo is seeded by its own (method, budget, seed) and searches on one CPU
thread, so where it runs changes nothing in its result: with ``workers`` processes the demo gives
the same table and figures as in one process, bit for bit (tests/test_demo.py checks it), in
about 1/workers of the time on a machine with that many idle cores. Processes rather than
threads, because the demo's kernels are small (tts_fast._threads says why threads do not pay).
Workers are started with 'spawn': a fork of a process whose OpenMP threads ran can hang.
"""

from __future__ import annotations

_STAGE = None  # each worker process's stage (models and judge), loaded once


def jobs_of(settings, specs) -> list:
    """(method, budget n, seed) of every run, in the demo's order (fixed-NFE methods at one budget)."""
    return [(key, n, seed) for key in settings.methods for n in ([1] if specs[key].fixed_nfe else settings.budgets)
            for seed in settings.seeds]


def _cost(job, specs) -> int:
    # Largest first keeps the workers busy to the end: budget x (3 with gradients, else 1).
    key, n, _ = job
    grad = bool(specs[key].options.get("rho") or specs[key].options.get("mu"))
    return n * (3 if grad else 1)


def load_stage(name: str, device):
    """The demo stage ``name`` ('mnist' or 'digits', :mod:`.demo_stages`) on ``device``."""
    from .demo_stages import STAGES

    return STAGES[name](device)


def run_job(stage, job, s) -> dict:
    """One (method, budget n, seed) run of the settings ``s`` on ``stage``: a record of per-sample results."""
    import torch

    from ..zoo.experiment import SPECS

    key, n, seed = job
    targets = torch.tensor([d for d in s.digits for _ in range(s.per_digit)], dtype=torch.int64)
    rec = stage.run(SPECS[key], targets, n=n, num_steps=s.steps, seed=seed)
    return {"method": key, "label": SPECS[key].label, "n": n, "seed": seed, **rec}


def _start_worker(stage: str, device: str, n_threads: int) -> None:
    global _STAGE
    from .. import _threads

    _threads.apply(n_threads)
    _STAGE = load_stage(stage, device)


def _run_in_worker(job, s):
    return run_job(_STAGE, job, s)


def run_all(stage, s, *, device, n_threads: int, workers: int, bar=None) -> list:
    """Every run of the demo settings ``s`` (stage ``s.model``), in the order of :func:`jobs_of`.

    ``stage``: the loaded stage of this process (used when ``workers`` is 1). ``bar``: a tqdm bar
    advanced by one per finished run, or None.
    """
    from ..zoo import experiment as ex

    jobs = jobs_of(s, ex.SPECS)
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        runs = []
        for job in jobs:
            if bar is not None:
                bar.set_description(f"{job[0]} N={job[1]}")
            runs.append(run_job(stage, job, s))
            if bar is not None:
                bar.update(1)
        return runs
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i], ex.SPECS))
    results = [None] * len(jobs)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(s.model, str(device), n_threads)) as pool:
        futures = {pool.submit(_run_in_worker, jobs[i], s): i for i in order}
        for f in as_completed(futures):
            i = futures[f]
            results[i] = f.result()
            if bar is not None:
                bar.set_description(f"{jobs[i][0]} N={jobs[i][1]}")
                bar.update(1)
    return results
