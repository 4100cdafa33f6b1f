"""``tts-fast run`` on several processes: torchrun ranks (gloo, CPU) and a local Ray cluster.

Over 20 digits prompts: 2 ranks give the records of 1 rank bit for bit (record JSON minus its
"run" fields, PNG bytes); a rank killed with SIGKILL mid-run loses only unfinished prompts, and
the rerun completes the set without touching the finished prompts' files; Ray writes the same
records. Broken variants these catch: seeds that depend on the rank or the rank count, ranks
that run the same groups (or drop some), resume that recomputes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tts_fast.runs import comparable

ROOT = Path(__file__).resolve().parents[1]
N = 20
# 4 particles x 50 steps: about 0.2 s per prompt on one CPU thread, so a kill lands mid-run
# no --threads: the policy gives every rank one thread (torchrun sets OMP_NUM_THREADS=1 for several ranks)
RUN = ["--model", "digits", "--method", "bfs_best", "--particles", "4", "--steps", "50", "--no-progress"]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "digits.txt"
    path.write_text("".join(f"{i * 7 % 10}\n" for i in range(N)))
    return str(path)


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("OMP_NUM_THREADS", None)
    return env


def _torchrun(k: int, prompts: str, out, popen: bool = False, run=RUN):
    # --standalone: a rendezvous on a free local port, so parallel test runs do not collide
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", "-m", "tts_fast", "run", *run,
           "--prompts-file", prompts, "--out", str(out)]
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)


def _records(out) -> dict:
    recs = {}
    for i in range(N):
        try:
            recs[i] = json.loads((Path(out) / f"{i:05d}.json").read_text())
        except (OSError, ValueError):
            pass
    return recs


def _assert_same(a_out, b_out):
    a, b = _records(a_out), _records(b_out)
    assert sorted(a) == sorted(b) == list(range(N))
    for i in range(N):
        assert comparable(a[i]) == comparable(b[i]), f"record {i} differs"
        assert (Path(a_out) / f"{i:05d}.png").read_bytes() == (Path(b_out) / f"{i:05d}.png").read_bytes(), f"image {i} differs"


@pytest.fixture(scope="module")
def one_rank(prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    p = _torchrun(1, prompts, out)
    assert p.returncode == 0, p.stdout + p.stderr
    return out


def test_two_ranks_give_the_records_of_one_rank_bit_for_bit(prompts, one_rank, tmp_path):
    out = tmp_path / "two"
    p = _torchrun(2, prompts, out)
    assert p.returncode == 0, p.stdout + p.stderr
    _assert_same(one_rank, out)
    assert {r["run"]["threads"] for r in _records(out).values()} == {1}  # one thread per rank, by default
    recs = _records(out)
    assert {r["run"]["world_size"] for r in recs.values()} == {2} and {r["run"]["launcher"] for r in recs.values()} == {"torchrun"}
    by_rank = {r: sorted(i for i, rec in recs.items() if rec["run"]["rank"] == r) for r in (0, 1)}
    assert by_rank == {0: list(range(0, N, 2)), 1: list(range(1, N, 2))}  # round-robin: each group on one rank, none twice
    s = json.loads((out / "summary.json").read_text())
    assert (s["ok"], s["failed"], s["missing"]) == (N, 0, 0)
    assert [r["prompts"] for r in s["this_run"]["ranks"]] == [N // 2, N // 2] and s["this_run"]["prompts_computed"] == N
    assert (out / "contact_sheet.png").read_bytes() == (one_rank / "contact_sheet.png").read_bytes()
    assert "prompts/s" in p.stdout and not [f for f in os.listdir(out) if f.startswith(".tmp-")]


def _children(pid: int) -> list:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(d))
    return kids


def _rank_of(pid: int):
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for kv in env:
        if kv.startswith(b"RANK="):
            return int(kv[5:])
    return None


def test_a_killed_rank_loses_only_unfinished_prompts_and_the_rerun_completes(prompts, one_rank, tmp_path):
    out = tmp_path / "killed"
    proc = _torchrun(2, prompts, out, popen=True)
    victim, deadline = None, time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        ranks = {_rank_of(c): c for c in _children(proc.pid)}
        if 1 in ranks and sum(r["run"]["rank"] == 1 for r in _records(out).values()) >= 2:
            victim = ranks[1]
            os.kill(victim, signal.SIGKILL)
            break
        time.sleep(0.01)
    log = proc.communicate(timeout=120)[0]
    assert victim is not None, "rank 1 was not caught mid-run:\n" + log
    assert proc.returncode != 0
    done = _records(out)
    assert 2 <= len(done) < N, f"the kill did not land mid-run ({len(done)} records)"
    finished = {}
    for i in done:
        for name in (f"{i:05d}.json", f"{i:05d}.png"):
            st = os.stat(out / name)
            finished[name] = (st.st_ino, st.st_mtime_ns, (out / name).read_bytes())
    p = _torchrun(2, prompts, out)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"resuming: {len(done)} prompt(s) already done, {N - len(done)} to go" in p.stdout
    for name, (ino, mtime, data) in finished.items():  # not recomputed, not rewritten
        st = os.stat(out / name)
        assert (st.st_ino, st.st_mtime_ns, (out / name).read_bytes()) == (ino, mtime, data), name
    _assert_same(one_rank, out)
    s = json.loads((out / "summary.json").read_text())
    assert (s["ok"], s["this_run"]["prompts_computed"], s["this_run"]["prompts_resumed"]) == (N, N - len(done), len(done))


def test_ray_writes_the_records_of_torchrun(prompts, one_rank, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="the Ray test needs the extra 'ray' (pip install 'tts_fast[ray]')")
    from tts_fast.distributed.ray import run

    out = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        s = run([*RUN, "--prompts-file", prompts, "--out", str(out)])
        from tts_fast import cli

        capsys.readouterr()
        assert cli.main(["run", "--ray", "auto", *RUN, "--prompts-file", prompts, "--out", str(out)]) == 0  # the CLI, same cluster
        assert f"all {N} prompt(s) already done" in capsys.readouterr().out
    finally:
        ray.shutdown()
    _assert_same(one_rank, out)
    recs = _records(out)
    assert {r["run"]["launcher"] for r in recs.values()} == {"ray"} and {r["run"]["rank"] for r in recs.values()} == {0, 1}
    assert (s["ok"], s["this_run"]["world_size"], s["this_run"]["prompts_computed"]) == (N, 2, N)
    assert sum(r["prompts"] for r in s["this_run"]["ranks"]) == N


def test_dfs_reference_and_records_do_not_depend_on_the_rank_count(tmp_path):
    """tts-fast run --method dfs fits the prompt set's DFS reference on every rank: 1 and 2 ranks write
    the same dfs_reference.json and the same records (mixed easy and hard gmm prompts)."""
    prompts = tmp_path / "gmm.txt"
    prompts.write_text("".join(f"[{2 if i % 2 else -2}, 0]\n" for i in range(6)))
    run = ["--model", "gmm", "--method", "dfs", "--particles", "3", "--steps", "10", "--threads", "1", "--no-progress"]
    outs = []
    for k in (1, 2):
        out = tmp_path / f"ranks{k}"
        p = _torchrun(k, str(prompts), out, run=run)
        assert p.returncode == 0, p.stdout + p.stderr
        outs.append(out)
    assert (outs[0] / "dfs_reference.json").read_text() == (outs[1] / "dfs_reference.json").read_text()
    for i in range(6):
        a, b = (json.loads((o / f"{i:05d}.json").read_text()) for o in outs)
        assert comparable(a) == comparable(b) and "dfs_reference" in a, i
