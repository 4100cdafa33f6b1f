"""The tables of docs/real_digits.md and README.md, made from benchmarks/results/real_digits.json.

    python benchmarks/real_digits.py --tables       # rewrites them (through _common.refresh_tables)

Each table sits between ``<!-- real_digits:NAME:begin -->`` and ``<!-- real_digits:NAME:end -->`` with
NAME in quality, main, scaling, strength (:data:`TABLES`).
"""

from __future__ import annotations

from _common import pm

WHAT = {"unet": "class-conditional UNet (v-prediction, cosine, 1000 steps; null label = unconditional)",
        "verifier": "verifier: CNN (selects)", "guide": "guide: LeNet-style CNN (dual verifier's gradients)"}
SCALING_LABELS = {"bon": "best-of-N", "bfs_best": "BFS-best", "bfs_local": "BFS-best + local", "bfs_local_dual": "BFS-best + local (dual)"}


def table_quality(res: dict) -> str:
    """The shipped files, the classifiers' and the judge's accuracy, the real Fréchet floor."""
    q = res["quality"]
    acc = q["classifier_test_accuracy"]
    lines = [
        "| file | what | parameters | size | training (CPU, 1 thread) | accuracy on the 500 held-out real digits |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, f in q["weights"].items():
        cell = "—" if name == "unet" else f"{acc[name]:.4f}"
        lines.append(f"| `{f['file']}` | {WHAT[name]} | {f['params']:,} | {f['bytes'] / 2**20:.2f} MiB | "
                     f"{f['steps']:,} steps × {f['batch']}, {f['cpu_seconds'] / 60:.0f} CPU min ({f['seconds'] / 60:.0f} min wall) | {cell} |")
    lines.append(f"| (ccexam `weights/mnist.pth`) | the judge: ccexam's MNISTNet (third party, never searched with) | 421,642 | — | — | "
                 f"{acc['judge']:.4f} (all 5,000: {acc['judge_all_5000']:.4f}) |")
    fl = q["real_floor"]
    lines += ["", f"Fréchet distance (judge features) of {fl['n']} real held-out digits ({fl['n'] // 10} per class) to the 4,500 "
              f"training digits: **{fl['frechet']:.1f} ± {fl['frechet_se']:.1f}** (mean ± s.e. over 20 draws): the floor a perfect "
              f"model reaches at this sample size."]
    return "\n".join(lines)


def table_main(res: dict) -> str:
    """Methods at matched NFE: verifier reward and accuracy, judge accuracy, gap, Fréchet distance, NFE."""
    s = res["meta"]["settings"]
    lines = [
        f"N = {s['n']} trajectories of {s['num_steps']} steps per sample ({s['n'] * s['num_steps']} model NFE; plain sampling: "
        f"{s['num_steps']}); {s['rows_per_call']} samples per seed, {len(s['seeds'])} seeds; mean ± s.e. over seeds. "
        "Fréchet distance at n = " + str(s["rows_per_call"]) + " (lower is better; the real-digit floor is in the table above).",
        "",
        "| method | verifier reward (log p) | verifier accuracy | judge accuracy | gap (verifier − judge) | Fréchet distance | model NFE | grad NFE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["tables"]["main"]:
        lines.append(f"| {r['label']} | {pm(r, 'verifier_reward', 2)} | {pm(r, 'verifier_acc')} | {pm(r, 'judge_acc')} | {pm(r, 'gap')} | "
                     f"{pm(r, 'frechet', 1)} | {r['nfe_per_row']:.0f} | {r['nfe_grad_per_row']:.0f} |")
    return "\n".join(lines)


def table_scaling(res: dict) -> str:
    """Judge accuracy (verifier accuracy; Fréchet distance) per method and budget N."""
    t = res["tables"]["scaling"]
    steps = res["meta"]["settings"]["num_steps"]
    ns = list(next(iter(t.values())).keys())
    lines = [
        "Judge accuracy (mean ± s.e.); in brackets: verifier accuracy, then the Fréchet distance.",
        "",
        "| method | " + " | ".join(f"N = {n} ({int(n) * steps} NFE)" for n in ns) + " |",
        "|---|" + "---:|" * len(ns),
    ]
    for key, row in t.items():
        cells = [f"{pm(row[n], 'judge_acc')} ({row[n]['verifier_acc']:.3f}; {row[n]['frechet']:.0f})" for n in ns]
        lines.append(f"| {SCALING_LABELS.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_strength(res: dict) -> str:
    """Local search with scaled gradient steps, single against dual verifiers."""
    rows = res["tables"]["strength"]
    local = res["meta"]["settings"]["local"]
    lines = [
        f"Local search alone (N/2 particles, R = 2 recurrences, N = {res['meta']['settings']['n']}), its gradient steps "
        f"(rho = {local['rho']}, mu = {local['mu']} at x1) scaled; single: gradients and selection from the verifier; dual: "
        "gradients from the guide, selection from the verifier.",
        "",
        "| steps × | verifier | verifier reward | verifier accuracy | judge accuracy | gap | Fréchet distance |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['scale']:g} | {'dual' if r['dual'] else 'single'} | {pm(r, 'verifier_reward', 2)} | {pm(r, 'verifier_acc')} | "
                     f"{pm(r, 'judge_acc')} | {pm(r, 'gap')} | {pm(r, 'frechet', 1)} |")
    return "\n".join(lines)


TABLES = {"quality": table_quality, "main": table_main, "scaling": table_scaling, "strength": table_strength}


def available(res: dict) -> list:
    """The (name, table) pairs whose part the results hold (a partial run has only some)."""
    return [(name, fn) for name, fn in TABLES.items() if (res.get("quality") if name == "quality" else res.get("tables", {}).get(name))]
