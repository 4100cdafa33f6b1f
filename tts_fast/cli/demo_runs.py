"""The searches of ``tts-fast demo``: in this process, or spread over worker processes.

Every search of the demo is seeded by its own (method, budget, seed) and searches on one CPU
thread, so where it runs changes nothing in its result: with ``workers`` processes the demo gives
the same table and figures as in one process, bit for bit (tests/test_demo.py checks it), in
about 1/workers of the time on a machine with that many idle cores. Processes rather than
threads, because the demo's kernels are small (tts_fast._threads says why threads do not pay).
Workers are started with 'spawn': a fork of a process whose OpenMP threads ran can hang.
"""

from __future__ import annotations

_ZOO = None  # each worker process's models, loaded once


def jobs_of(settings, specs) -> list:
    """(method, budget n, seed) of every run, in the demo's order (fixed-NFE methods at one budget)."""
    return [(key, n, seed) for key in settings.methods for n in ([1] if specs[key].fixed_nfe else settings.budgets)
            for seed in settings.seeds]


def _cost(job, specs) -> int:
    # Largest first keeps the workers busy to the end: budget x (3 with gradients, else 1).
    key, n, _ = job
    grad = bool(specs[key].options.get("rho") or specs[key].options.get("mu"))
    return n * (3 if grad else 1)


def _start_worker(device: str, n_threads: int) -> None:
    global _ZOO
    from .. import _threads
    from ..zoo.experiment import Zoo

    _threads.apply(n_threads)
    _ZOO = Zoo(device)


def _run_in_worker(job, s):
    from ..zoo import experiment as ex

    key, n, seed = job
    return ex.run(_ZOO, key, digits_=s.digits, per_digit=s.per_digit, n=n, num_steps=s.steps, seed=seed)


def run_all(zoo, s, *, device, n_threads: int, workers: int, bar=None) -> list:
    """Every run of the demo settings ``s``, in the order of :func:`jobs_of`.

    ``zoo``: the models of this process (used when ``workers`` is 1). ``bar``: a tqdm bar advanced
    by one per finished run, or None.
    """
    from ..zoo import experiment as ex

    jobs = jobs_of(s, ex.SPECS)
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        runs = []
        for key, n, seed in jobs:
            if bar is not None:
                bar.set_description(f"{key} N={n}")
            runs.append(ex.run(zoo, key, digits_=s.digits, per_digit=s.per_digit, n=n, num_steps=s.steps, seed=seed))
            if bar is not None:
                bar.update(1)
        return runs
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i], ex.SPECS))
    results = [None] * len(jobs)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(str(device), n_threads)) as pool:
        futures = {pool.submit(_run_in_worker, jobs[i], s): i for i in order}
        for f in as_completed(futures):
            i = futures[f]
            results[i] = f.result()
            if bar is not None:
                bar.set_description(f"{jobs[i][0]} N={jobs[i][1]}")
                bar.update(1)
    return results
