"""Oracles for DFS: the check rule, the backtrack distance, the plan, the quantile window and the
caps are recomputed from what the run recorded, so a flipped comparison, an ignored option or a
wrong distance fails."""

import math

import pytest
import torch

import tts_fast as tts

S = 20


def _checks(trace):
    """The check rows of a compact-slot run, in order."""
    return [row for row in trace if isinstance(row["step"], int) and "walkers" in row]


def _checked(row):
    """Which entries of a check row are real checks (fixed slots record every slot with a mask)."""
    return row.get("checked", [True] * len(row["walkers"]))


def _expected_nfe(trace, rows, n, back, s=S, steps_cost=1):
    """Model NFE per row: every walker's S levels, plus (l - max(l - back, 0) + 1) per backtrack from level l."""
    nfe = torch.full((rows,), n * s, dtype=torch.int64)
    for row in _checks(trace):
        keep = [k for k, c in enumerate(_checked(row)) if c]
        for k in keep:
            if row["rejected"][k]:
                lv = row["levels"][k]
                nfe[row["walkers"][k] // n] += lv - max(lv - back, 0) + 1
    return nfe * steps_cost


def _assert_check_rule(trace, n_walkers, tau_at, cap, backs=None):
    """Every recorded check: rejected iff r < tau(level) and the walker is under the cap (counting
    ``backs`` taken before). Returns the backtracks per walker and the numbers of passed and failed checks."""
    backs = torch.zeros(n_walkers, dtype=torch.int64) if backs is None else backs.clone()
    passed = failed = 0
    for row in _checks(trace):
        for w, lv, rew, rej, c in zip(row["walkers"], row["levels"], row["rewards"], row["rejected"], _checked(row)):
            if not c:
                assert not rej
                continue
            below = rew < tau_at(lv)
            assert rej == (below and (cap is None or int(backs[w]) < cap)), (w, lv, rew, rej, int(backs[w]))
            backs[w] += int(rej)
            passed, failed = passed + int(not below), failed + int(below)
    return backs, passed, failed


def _quantized(verifier):
    """The verifier's rewards rounded to halves: ties with thresholds on that grid are common, so a
    check rule of <= instead of < shows."""
    return tts.verifiers.Function(lambda x: torch.round(2 * verifier(x)) / 2)


@pytest.mark.parametrize("slots", ["compact", "fixed"])
@pytest.mark.parametrize("back,quantized", [(3, False), (8, False), (8, True)])
def test_absolute_threshold_rule_and_backtrack_cost(rare_mode, slots, back, quantized):
    """A check fails exactly when r < threshold_i (here one value per step, stricter early); each
    backtrack from level l returns to max(l - back, 0) (a fresh noise at 0) and costs the levels in
    between again; max_backtracks caps every walker."""
    model, verifier = rare_mode
    verifier = _quantized(verifier) if quantized else verifier
    n, b, cap = 4, 3, 2
    tau = [-7.5 if i < 10 else -9.0 for i in range(S)]
    r = tts.search(model, verifier, "dfs", threshold=tau, backtrack=back, start=6, every=3, max_backtracks=cap,
                   slots=slots, n_particles=n, batch_size=b, num_steps=S, seed=3, progress=False)
    levels = {lv for row in _checks(r.trace) for lv, c in zip(row["levels"], _checked(row)) if c}
    assert levels == {6, 9, 12, 15, 18}
    backs, passed, failed = _assert_check_rule(r.trace, b * n, lambda lv: tau[lv], cap)
    assert passed > 0 and failed > 0
    if quantized:  # some rewards sit exactly on their threshold: they pass
        assert any(rew == tau[lv] for row in _checks(r.trace) for lv, rew in zip(row["levels"], row["rewards"]))
    rejected_at = {lv for row in _checks(r.trace) for lv, rej in zip(row["levels"], row["rejected"]) if rej}
    if back == 8 and not quantized:
        assert min(rejected_at) < back < max(rejected_at)  # backtracks to a fresh start and to a level above it
    final = torch.tensor(next(row for row in r.trace if row["step"] == "final")["backtracks"]).reshape(-1)
    assert torch.equal(final, backs) and int(backs.max()) == cap and int(backs.min()) < cap
    assert torch.equal(r.nfe_per_prompt, _expected_nfe(r.trace, b, n, back))
    # the verifier scored the real checks and the final samples (fixed slots score every slot, count these)
    assert r.nfe.verifier == sum(sum(_checked(row)) for row in _checks(r.trace)) + b * n


@pytest.mark.parametrize("slots", ["compact", "fixed"])
def test_local_search_in_dfs_guides_each_row_and_counts_working_slots(slots):
    """DFS + local search (x0-space ascent) with one target per prompt row: the guidance uses each
    walker's own row, and verifier gradients are counted for the steps actually taken."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.9, 0.1])
    verifier = tts.verifiers.GaussianReward([[-2.0, 0.0], [2.0, 0.0], [2.0, 0.0]], 1.0)  # per row
    n, b = 4, 3
    r = tts.search(model, verifier, "dfs", threshold=-4.0, start=10, every=4, max_backtracks=2, mu=0.5, slots=slots,
                   n_particles=n, batch_size=b, num_steps=S, seed=0, progress=False)
    rejections = sum(sum(rej for rej, c in zip(row["rejected"], _checked(row)) if c) for row in _checks(r.trace))
    assert rejections > 0
    assert r.nfe.verifier_grad == r.nfe.model - rejections  # one ascent step per accepted transition
    assert r.nfe.verifier == sum(sum(_checked(row)) for row in _checks(r.trace)) + b * n + r.nfe.verifier_grad
    assert torch.equal(r.nfe_per_prompt, _expected_nfe(r.trace, b, n, round(0.4 * S)))
    # every row's best sample sits at its own target's mode
    assert r.samples[:, 0].sign().tolist() == [-1.0, 1.0, 1.0]


def test_threshold_schedule_and_sequences_shape_the_per_level_threshold():
    grid = tts.schedules.ddpm_linear().grid(S)
    _, _, const = tts.DFS(threshold=-2.0).plan(grid)
    assert torch.equal(const, torch.full((S,), -2.0, dtype=torch.float64))
    _, _, inc = tts.DFS(threshold=-2.0, threshold_schedule="increase").plan(grid)
    assert torch.allclose(inc, -2.0 / grid.shape("increase").double())
    assert float(inc[0]) < -2.0 < float(inc[-1])  # lenient at noisy levels, strict near clean data
    seq = [float(-i) for i in range(S)]
    _, _, given = tts.DFS(threshold=seq).plan(grid)
    assert given.tolist() == seq
    assert tts.DFS(quantile=0.5).plan(grid)[2] is None


def test_increasing_threshold_schedule_is_what_the_checks_use(rare_mode):
    model, verifier = rare_mode
    grid = model.schedule.grid(S)
    method = tts.DFS(threshold=-8.0, threshold_schedule="increase", start=4, every=5, max_backtracks=3)
    tau = method.plan(grid)[2]
    r = tts.search(model, verifier, method, n_particles=4, batch_size=2, num_steps=S, seed=0, progress=False)
    _, passed, failed = _assert_check_rule(r.trace, 8, lambda lv: float(tau[lv]), 3)
    assert passed > 0 and failed > 0


@pytest.mark.parametrize("s,kw,plan", [
    (20, {}, (8, list(range(10, 20, 2)))),  # defaults: back round(0.4 S), start round(0.5 S), every round(0.1 S)
    (10, dict(backtrack=3, start=2, every=4), (3, [2, 6])),
    (3, {}, (1, [2])),  # start min(round(1.5), 2) = 2, every and back at least 1
    (7, dict(start=0), (3, [0, 1, 2, 3, 4, 5, 6])),
])
def test_plan(s, kw, plan):
    back, checks, _ = tts.DFS(threshold=0.0, **kw).plan(tts.schedules.ddpm_linear().grid(s))
    assert (back, checks) == plan


def test_start_outside_the_run_is_refused():
    with pytest.raises(ValueError, match="start must be < num_steps=10, got 10"):
        tts.DFS(threshold=0.0, start=10).plan(tts.schedules.ddpm_linear().grid(10))


@pytest.mark.parametrize("history", [2, 5])
def test_quantile_threshold_is_the_running_quantile_of_the_prompts_window(rare_mode, history):
    """A check fails when r is below the q-quantile of the last ``history`` rewards of that prompt at
    that check level (this iteration's included), recomputed here from the recorded checks."""
    model, verifier = rare_mode
    n, b, q = 4, 2, 0.5
    r = tts.search(model, verifier, "dfs", quantile=q, history=history, start=12, every=4, max_backtracks=3,
                   n_particles=n, batch_size=b, num_steps=S, seed=1, progress=False)
    window: dict = {}
    rejected = 0
    for row in _checks(r.trace):
        batch = list(zip(row["walkers"], row["levels"], row["rewards"], row["rejected"]))
        for w, lv, rew, _ in batch:  # the whole iteration is appended before its quantiles are read
            window.setdefault((w // n, lv), []).append(rew)
        for w, lv, rew, rej in batch:
            past = torch.tensor(window[(w // n, lv)][-history:], dtype=torch.float64)
            below = rew < float(torch.quantile(past, q))
            assert rej == below or (below and not rej), (w, lv, rew, rej)
            rejected += int(rej)
    assert rejected > 0


def test_max_backtracks_zero_is_the_plain_sampler(rare_mode):
    """No backtrack allowed: absolute-threshold DFS spends N * S and returns the plain samples' best."""
    model, verifier = rare_mode
    kw = dict(n_particles=4, batch_size=3, num_steps=S, seed=2, progress=False)
    d = tts.search(model, verifier, "dfs", threshold=10.0, max_backtracks=0, **kw)
    bon = tts.search(model, verifier, "bon", **kw)
    assert d.nfe.model == bon.nfe.model == 3 * 4 * S
    assert all(not any(row["rejected"]) for row in _checks(d.trace))


@pytest.mark.parametrize("slots", ["compact", "fixed"])
def test_backtracks_are_taken_only_within_the_budget(rare_mode, slots):
    """With an unreachable threshold and no cap, the budget alone stops backtracking: each row ends
    with less left than one backtrack costs (back + 1 levels: every check is at a level >= back), and
    the accounting formula holds."""
    model, verifier = rare_mode
    n, b, back = 4, 3, 5
    row_budget = n * S * 2
    r = tts.search(model, verifier, "dfs", threshold=10.0, backtrack=back, start=10, max_backtracks=None,
                   budget=b * row_budget, slots=slots, n_particles=n, batch_size=b, num_steps=S, seed=0, progress=False)
    left = row_budget - r.nfe_per_prompt
    assert bool((left >= 0).all()) and bool((left < back + 1).all()), left
    assert torch.equal(r.nfe_per_prompt, _expected_nfe(r.trace, b, n, back))


def test_dfs_returns_each_prompts_best_walker(rare_mode):
    model, verifier = rare_mode
    r = tts.search(model, verifier, "dfs", threshold=-0.5, n_particles=5, batch_size=3, num_steps=S, seed=6, progress=False)
    assert torch.equal(r.rewards, r.particle_rewards.max(1).values)
    assert torch.allclose(verifier(r.samples), r.rewards)


def _calibration(trace):
    cal = next(row for row in trace if row["step"] == "calibration")
    sent = next(row for row in trace if row["step"] == "calibration_backtracks")["sent_back"]
    return cal["levels"], torch.tensor(cal["thresholds"], dtype=torch.float64), torch.tensor(cal["rewards"], dtype=torch.float64), torch.tensor(sent)


@pytest.mark.parametrize("slots", ["compact", "fixed"])
def test_calibrated_and_absolute_thresholds_fail_only_together(rare_mode, slots):
    """calibrate with threshold: a walker goes back after its first descent iff some check has r below
    both the pooled quantile and the absolute threshold; later checks use the lower of the two."""
    model, verifier = rare_mode
    n, b, q, tau = 6, 4, 0.6, -7.5
    r = tts.search(model, verifier, "dfs", calibrate=q, threshold=tau, start=10, every=4, max_backtracks=3, slots=slots,
                   n_particles=n, batch_size=b, num_steps=S, seed=4, progress=False)
    levels, cal, rewards, sent = _calibration(r.trace)
    assert torch.allclose(cal, torch.quantile(rewards, q, dim=1))
    below_cal, below_abs = rewards < cal[:, None], rewards < tau
    assert torch.equal(sent, (below_cal & below_abs).any(0))
    # the combination matters here: some walkers fail one threshold but not the other
    assert bool((below_cal & ~below_abs).any()) and bool((below_abs & ~below_cal).any())
    low = dict(zip(levels, torch.minimum(cal, torch.tensor(tau, dtype=cal.dtype)).tolist()))
    # the first descent's backtrack counts for the cap
    backs, passed, failed = _assert_check_rule(r.trace, b * n, lambda lv: low[lv], 3, backs=sent.long())
    assert passed > 0 and failed > 0
    final = torch.tensor(next(row for row in r.trace if row["step"] == "final")["backtracks"]).reshape(-1)
    assert torch.equal(final, backs) and int(final.max()) == 3


@pytest.mark.parametrize("back", [4, 30])
def test_calibration_backtracks_are_granted_in_walker_order_within_the_budget(rare_mode, back):
    """After the first descent (N * S per row spent) a failed walker costs the S - j levels from the
    level j it returns to; a row grants its failed walkers in order while that fits in its budget."""
    model, verifier = rare_mode
    n, b = 6, 3
    row_budget = n * S + 2 * S - 3  # room for a couple of backtracks per row, not for all
    r = tts.search(model, verifier, "dfs", calibrate=0.7, backtrack=back, start=8, every=5, max_backtracks=None,
                   budget=b * row_budget, n_particles=n, batch_size=b, num_steps=S, seed=7, progress=False)
    levels, cal, rewards, sent = _calibration(r.trace)
    fail = rewards < cal[:, None]
    first = torch.tensor(levels)[fail.to(torch.int8).argmax(0)]
    cost = S - (first - back).clamp(min=0)
    expect = torch.zeros_like(sent)
    for row in range(b):
        slack = row_budget - n * S
        for w in range(row * n, (row + 1) * n):
            if fail[:, w].any():
                if int(cost[w]) <= slack:
                    expect[w] = True
                    slack -= int(cost[w])
                else:
                    break  # later walkers of the row are not granted either once one does not fit
    assert torch.equal(sent, expect), (sent, expect, cost)
    assert 0 < int(sent.sum()) < int(fail.any(0).sum())
    assert bool((r.nfe_per_prompt <= row_budget).all())


def test_a_reward_equal_to_the_calibrated_threshold_passes(rare_mode):
    """15 walkers and q = 0.5: the threshold is the median reward itself (no interpolation); that
    walker's check passes (r < threshold fails)."""
    model, verifier = rare_mode
    r = tts.search(model, verifier, "dfs", calibrate=0.5, start=S - 1, max_backtracks=1, n_particles=5, batch_size=3,
                   num_steps=S, seed=0, progress=False)
    _, cal, rewards, sent = _calibration(r.trace)
    assert bool((rewards == cal[:, None]).any(1).all())  # the median is one walker's reward
    assert torch.equal(sent, (rewards < cal[:, None]).any(0)) and int(sent.sum()) == 7


@pytest.mark.parametrize("slots", ["compact", "fixed"])
def test_calibrated_dfs_cost_per_backtrack(rare_mode, slots):
    """Calibrated DFS spends the first descent (N * S), then S - j for every walker sent back to level j
    after it, then l - j + 1 for every later backtrack from level l."""
    model, verifier = rare_mode
    n, b, back = 4, 3, 12  # the first check (10) goes back to a fresh start
    r = tts.search(model, verifier, "dfs", calibrate=0.5, backtrack=back, start=10, every=4, max_backtracks=2, slots=slots,
                   n_particles=n, batch_size=b, num_steps=S, seed=2, progress=False)
    levels, cal, rewards, sent = _calibration(r.trace)
    first = torch.tensor(levels)[(rewards < cal[:, None]).to(torch.int8).argmax(0)]
    j = (first - back).clamp(min=0)
    assert bool((j[sent] == 0).any())
    cost = torch.where(sent, S - j, 0).view(b, n).sum(1)
    assert torch.equal(r.nfe_per_prompt, _expected_nfe(r.trace, b, n, back) + cost)


def test_append_keeps_the_last_entries_of_each_buffer():
    """Ring buffers of length 2: four appends to buffer 0 in one call keep its last two; the spare
    (last) buffer takes what is dropped; counts count every append."""
    from tts_fast.search.dfs import _append

    hist = torch.full((3, 2), math.nan, dtype=torch.float64)
    count = torch.zeros(3, dtype=torch.int64)
    _append(hist, count, torch.tensor([1, 0, 0, 0]), torch.tensor([9.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    assert sorted(hist[0].tolist()) == [2.0, 3.0] and hist[1].tolist()[0] == 9.0 and math.isnan(hist[1, 1])
    assert count.tolist() == [3, 1, 0]
    _append(hist, count, torch.tensor([0]), torch.tensor([5.0], dtype=torch.float64))
    assert sorted(hist[0].tolist()) == [3.0, 5.0] and count.tolist() == [4, 1, 0]


@pytest.mark.parametrize("opts", [dict(calibrate=0.5), dict(threshold=-5.0), dict(quantile=0.5)])
def test_returned_rewards_are_the_full_decodes_even_with_a_flattering_preview(rare_mode, opts):
    """Intermediate checks may use a cheap decode; the rewards DFS compares and returns for finished
    samples (the first descent's included) come from decode_full."""
    model, verifier = rare_mode

    class Flattering(tts.models.GaussianMixture):
        def decode(self, x0):
            return torch.tensor([2.0, 0.0], dtype=x0.dtype).expand_as(x0)  # every preview looks perfect

        def decode_full(self, x0):
            return x0

    m = Flattering(model.means, model.stds, model.weights)
    r = tts.search(m, verifier, "dfs", n_particles=4, batch_size=3, num_steps=S, seed=0, progress=False, max_backtracks=2,
                   **opts)
    assert torch.allclose(r.rewards, verifier(r.samples)) and torch.equal(r.samples, r.latents)
    assert torch.allclose(r.particle_rewards.reshape(-1), verifier(r.particles.reshape(-1, 2)))


def test_one_prompts_backtracks_are_not_charged_to_the_next():
    """Backtracks are granted per prompt row in walker order: the slack of row r is spent only by
    row r's own candidates, also when the row before has a single candidate (walker index 0)."""
    from types import SimpleNamespace

    from tts_fast.search.dfs import DFS

    def granted(walkers, extra, n_particles, budget, spent):
        ctx = SimpleNamespace(row_budget=budget, n_particles=n_particles, steps_cost=lambda: 1,
                              counter=SimpleNamespace(per_prompt=torch.tensor(spent)))
        state = SimpleNamespace(n_back=torch.zeros(8, dtype=torch.int64))
        w = torch.tensor(walkers)
        return DFS(threshold=0.0, max_backtracks=None)._grant_backtracks(
            ctx, state, ids=w, below=torch.ones(len(walkers), dtype=torch.bool), extra_levels=torch.tensor(extra),
            committed=torch.zeros(len(spent), dtype=torch.int64)
        ).tolist()

    # one walker per prompt: each row can afford its own backtrack of 3
    assert granted([0, 1], [3, 3], 1, 3, [0, 0]) == [True, True]
    assert granted([0, 1, 2], [3, 3, 3], 1, 3, [0, 1, 0]) == [True, False, True]
    # two walkers per prompt: the second of a row waits for what the first left
    assert granted([0, 1, 2, 3], [2, 2, 1, 2], 2, 3, [0, 0]) == [True, False, True, True]


@pytest.mark.parametrize("slots", ["compact", "fixed"])
def test_a_guided_walker_that_may_not_backtrack_keeps_its_state_and_guidance(rare_mode, slots):
    """Falling back to the best-so-far state at a first visit is a no-op: with every check failing
    and no backtrack allowed, guided DFS (the gradient carried with the state) equals guided DFS
    whose checks all pass."""
    model, verifier = rare_mode
    kw = dict(n_particles=3, batch_size=2, num_steps=S, seed=4, progress=False, rho=0.3, slots=slots, max_backtracks=0)
    failing = tts.search(model, verifier, "dfs", threshold=10.0, **kw)
    passing = tts.search(model, verifier, "dfs", threshold=-1e9, **kw)
    assert sum(sum(row["fallback"] if isinstance(row["fallback"], list) else [row["fallback"]])
               for row in _checks(failing.trace)) > 0
    assert torch.equal(failing.samples, passing.samples) and failing.nfe.model == passing.nfe.model
