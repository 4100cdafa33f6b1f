"""DFS thresholds that adapt across a prompt set: the reference pre-pass (search/calibration.py) and the
``tts-fast run --method dfs`` default that fits it once per run (runs/dfs_reference.py).

Broken variants these catch: thresholds that are not the pooled quantiles of the plain sampler's
rewards at DFS's check levels (wrong levels, per-prompt pools, another quantile); DFS's per-call
calibration in the reference's place (a prompt searched alone gets no adaptivity: hard and easy
prompts spend alike); a reference that depends on the rank or on which prompts a call holds.
"""

import json
import math
import os

import pytest
import torch

import tts_fast as tts
from tts_fast import cli
from tts_fast.search.calibration import DFSReference, fit_dfs_reference, reference_rewards

S = 20
MODEL = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
EASY, HARD = [-2.0, 0.0], [2.0, 0.0]  # the common mode, the rare mode


def _sources(centres, seed0=0):
    return [(MODEL, tts.verifiers.GaussianReward([c], 1.0), seed0 + g) for g, c in enumerate(centres)]


def test_thresholds_are_pooled_quantiles_at_the_check_levels():
    """Recomputed from the verifier's own calls: the rewards at DFS's check levels (start round(S/2),
    every round(S/10)), pooled over every walker of every source, their q-quantile per level."""
    seen = []

    class Spy(tts.verifiers.GaussianReward):
        def forward(self, x0, cond):
            r = super().forward(x0, cond)
            seen.append(r.detach().double())
            return r

    sources = [(MODEL, Spy([EASY], 1.0), 0), (MODEL, Spy([HARD], 1.0), 1)]
    ref = fit_dfs_reference(sources, n_particles=6, num_steps=S, quantile=0.3)
    assert ref.levels == list(range(10, S, 2)) and ref.rewards_per_level == 12 and ref.nfe == 2 * 6 * S
    per_source = len(ref.levels)
    pooled = torch.stack([torch.cat([seen[k], seen[per_source + k]]) for k in range(per_source)])
    assert torch.allclose(torch.tensor(ref.thresholds, dtype=torch.float64), torch.quantile(pooled, 0.3, dim=1), atol=0)
    # DFS's threshold option: one value per step, the checks' values at the check levels
    th = ref.threshold()
    assert len(th) == S and [th[i] for i in ref.levels] == ref.thresholds
    assert th[:10] == [ref.thresholds[0]] * 10 and th[11] == ref.thresholds[0]
    assert ref.options() == {"threshold": th}


def test_the_reference_follows_the_dfs_plan_it_is_fitted_for():
    ref = fit_dfs_reference(_sources([EASY]), n_particles=3, num_steps=S, dfs=tts.DFS(start=4, every=5))
    assert ref.levels == [4, 9, 14, 19]


def test_same_sources_same_reference_and_a_json_round_trip(tmp_path):
    a = fit_dfs_reference(_sources([EASY, HARD]), n_particles=4, num_steps=S, meta={"who": "test"})
    b = fit_dfs_reference(_sources([EASY, HARD]), n_particles=4, num_steps=S, meta={"who": "test"})
    assert a.to_dict() == b.to_dict()
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(a.to_dict()))
    assert DFSReference.from_dict(json.loads(path.read_text())) == a


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.update(format="other"), "not a DFS reference"),
    (lambda d: d.update(thresholds=d["thresholds"][:-1]), "one threshold per check level"),
    (lambda d: d.update(levels=[99] * len(d["levels"])), "inside \\[0, num_steps\\)"),
    (lambda d: d["thresholds"].__setitem__(0, float("nan")), "finite"),
])
def test_bad_reference_files_are_refused(edit, match):
    d = fit_dfs_reference(_sources([EASY]), n_particles=2, num_steps=S).to_dict()
    edit(d)
    with pytest.raises(ValueError, match=match):
        DFSReference.from_dict(d)


@pytest.mark.parametrize("kwargs,match", [
    (dict(quantile=0.0), "quantile must be a finite number > 0.0"),
    (dict(quantile=1.0), "quantile must be < 1"),
    (dict(n_particles=0), "n_particles must be an integer >= 1"),
])
def test_bad_arguments_are_refused_before_work(kwargs, match):
    calls = []
    v = tts.verifiers.Function(lambda x: calls.append(1) or x[:, 0])
    kw = dict(n_particles=2, num_steps=S, quantile=0.5)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_dfs_reference([(MODEL, v, 0)], **kw)
    assert not calls
    with pytest.raises(ValueError, match="at least one"):
        fit_dfs_reference([], n_particles=2, num_steps=S)


def test_reference_rewards_cost_one_plain_descent():
    v = tts.verifiers.GaussianReward([EASY, HARD], 1.0)
    r, nfe = reference_rewards(MODEL, v, n_particles=3, num_steps=S, levels=[5, 15], seed=0)
    assert r.shape == (2, 2 * 3) and nfe == 2 * 3 * S


# -- adaptivity across calls --------------------------------------------------------------------------------

PROMPTS = [EASY] * 4 + [HARD] * 4
BUDGET = 4 * S * 4  # model NFE per prompt: 4 walkers, room for three descents more


def _nfe_one_prompt_per_call(options_for):
    """Model NFE of each prompt of the set, every prompt searched alone (its own call and seed)."""
    out = []
    for i, c in enumerate(PROMPTS):
        r = tts.search(MODEL, tts.verifiers.GaussianReward([c], 1.0), "dfs", n_particles=4, num_steps=S, seed=100 + i,
                       budget=BUDGET, max_backtracks=None, progress=False, **options_for(i))
        out.append(int(r.nfe_per_prompt[0]))
    return torch.tensor(out, dtype=torch.float64)


def _check_hard_prompts_get_more(nfe):
    easy, hard = nfe[:4], nfe[4:]
    gap = float(hard.mean() - easy.mean())
    se = math.hypot(float(hard.std()), float(easy.std())) / 2  # 4 prompts each
    assert gap > 3.0 * se and gap > S, (easy.tolist(), hard.tolist())


@pytest.fixture(scope="module")
def reference():
    return fit_dfs_reference(_sources(PROMPTS, seed0=1000), n_particles=4, num_steps=S)


def test_a_prompt_set_searched_one_prompt_per_call_gives_hard_prompts_the_compute(reference):
    _check_hard_prompts_get_more(_nfe_one_prompt_per_call(lambda i: reference.options()))


def test_the_adaptivity_check_sees_per_call_calibration():
    """DFS by its name alone (calibrate=0.5 per call): alone, a prompt is ranked against itself."""
    with pytest.raises(AssertionError):
        _check_hard_prompts_get_more(_nfe_one_prompt_per_call(lambda i: {}))


# -- the tts-fast run default ----------------------------------------------------------------------------------

FAST = ["--particles", "3", "--steps", "10", "--no-progress", "--model", "gmm"]
SET = ["--prompt", "[-2, 0]", "--prompt", "[2, 0]", "--prompt", "[-2, 0.5]"]


def _run(out, *argv):
    return cli.main(["run", "--out", str(out), *FAST, *argv])


def _rec(out, i):
    with open(os.path.join(out, f"{i:05d}.json")) as f:
        return json.load(f)


def test_run_with_dfs_fits_the_reference_once_and_every_record_uses_it(tmp_path):
    out = tmp_path / "dfs"
    assert _run(out, "--method", "dfs", *SET) == 0
    ref = DFSReference.from_dict(json.loads((out / "dfs_reference.json").read_text()))
    assert ref.meta["prompts"] == [0, 1, 2] and ref.meta["seeds"] == [0, 1, 2] and ref.quantile == 0.5
    for i in range(3):
        rec = _rec(out, i)
        assert rec["dfs_reference"] == {"file": "dfs_reference.json", "levels": ref.levels, "thresholds": ref.thresholds}
    # the same search by hand, with the reference's thresholds, gives the same record
    r = tts.search(MODEL, tts.verifiers.GaussianReward([[2.0, 0.0]], 1.0), "dfs", n_particles=3, num_steps=10, seed=1,
                   progress=False, **ref.options())
    assert _rec(out, 1)["reward"] == float(r.rewards[0]) and _rec(out, 1)["nfe_model"] == int(r.nfe_per_prompt[0])
    # a rerun loads it (same file, nothing redone)
    mtime = os.path.getmtime(out / "dfs_reference.json")
    assert _run(out, "--method", "dfs", *SET) == 0
    assert os.path.getmtime(out / "dfs_reference.json") == mtime


def test_the_reference_does_not_depend_on_the_rank(tmp_path):
    """Every rank fits the same reference; a worker on rank 1 of 2 writes the file rank 0 writes."""
    from tts_fast.runs.job import prepare
    from tts_fast.runs.options import build_parser, config_of
    from tts_fast.runs.worker import Worker

    files = []
    for rank in (0, 1):
        out = tmp_path / f"rank{rank}"
        args = build_parser(raise_errors=True).parse_args(["--out", str(out), *FAST, "--method", "dfs", *SET])
        os.makedirs(out)
        Worker(prepare(config_of(args)), torch.device("cpu"), rank=rank, world_size=2)
        files.append((out / "dfs_reference.json").read_text())
    assert files[0] == files[1]


@pytest.mark.parametrize("extra", [["--option", "calibrate=0.5"], ["--option", "threshold=-1"], ["--option", "quantile=0.5"],
                                   ["--method", "bfs_best"], ["--option", "rho=0.1"]])
def test_runs_that_choose_their_thresholds_or_other_methods_fit_none(tmp_path, extra):
    out = tmp_path / "x"
    argv = ["--method", "dfs", *extra] if extra[0] == "--option" else extra
    assert _run(out, *argv, *SET) == 0
    assert not (out / "dfs_reference.json").exists() and "dfs_reference" not in _rec(out, 0)


def test_a_reference_of_other_prompts_is_refused(tmp_path, capsys):
    out = tmp_path / "dfs"
    assert _run(out, "--method", "dfs", *SET) == 0
    for i in range(3):
        os.remove(out / f"{i:05d}.json")
    assert _run(out, "--method", "dfs", "--prompt", "[0, 0]") == 2
    assert "dfs_reference.json was fitted for other settings or prompts" in capsys.readouterr().err


def test_reference_prompts_are_a_seeded_sample_of_large_sets():
    from tts_fast.runs.dfs_reference import MAX_PROMPTS, reference_prompts

    assert reference_prompts(10, 0) == list(range(10))
    a = reference_prompts(500, 3)
    assert len(a) == MAX_PROMPTS == len(set(a)) and a == sorted(a) and a == reference_prompts(500, 3) and a != reference_prompts(500, 4)
