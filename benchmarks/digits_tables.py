"""The digits tables of docs/digits.md and README.md, made from benchmarks/results/digits.json.

    python benchmarks/digits.py --tables       # rewrites them (through _common.refresh_tables)

Each table sits between ``<!-- digits:NAME:begin -->`` and ``<!-- digits:NAME:end -->`` with NAME
in quality, main, ablation, joint, hacking (:data:`TABLES`).
"""

from __future__ import annotations

from _common import pm

LABELS = {"bon": "BoN", "fk": "FK", "das": "DAS w/o grad", "svdd": "SVDD", "sop": "SoP", "zero_order": "zero-order", "bfs_best": "BFS-best"}


def table_quality(res: dict) -> str:
    q = res["quality"]
    acc = q["classifier_test_accuracy"]
    w = q["weights"]
    lines = [
        "| file | what | parameters | size | training (CPU, 1 thread) | accuracy on the 400 real test digits |",
        "|---|---|---:|---:|---:|---:|",
    ]
    what = {"unet": "diffusion UNet (ε-prediction, cosine, 1000 steps)", "verifier": "verifier: CNN (selects)",
            "guide": "guide: LeNet-style CNN (dual verifier's gradients)", "evaluator": "evaluator: MLP (held out)"}
    files = {"unet": "digits_unet.pt", "verifier": "digits_verifier.pt", "guide": "digits_guide.pt", "evaluator": "digits_evaluator.pt"}
    for k in ("unet", "verifier", "guide", "evaluator"):
        secs = w[k]["train_seconds"]
        lines.append(
            f"| `{files[k]}` | {what[k]} | {w[k]['params']:,} | {w[k]['bytes'] / 1024:.0f} KiB | "
            f"{w[k]['steps']:,} steps, {secs / 60:.1f} min | {'—' if k == 'unet' else f'{acc[k]:.4f}'} |"
        )
    hist = q["evaluator_histogram"]
    lines += [
        "",
        f"Plain sampling ({q['n']:,} samples, {q['num_steps']} ancestral steps, seed {q['seed']}), classified by the held-out evaluator:",
        "",
        "| digit | " + " | ".join(str(d) for d in range(10)) + " |",
        "|---|" + "---:|" * 10,
        "| fraction | " + " | ".join(f"{h:.3f}" for h in hist) + " |",
        "",
        f"- evaluator confident (max probability > 0.9): {q['evaluator_confident_fraction']:.3f} of plain samples "
        f"(real test digits: {q['real_test_evaluator_confident_fraction']:.3f})",
        f"- verifier and evaluator agree on {q['agreement_verifier_evaluator']:.3f} of plain samples "
        f"(real test digits: {q['real_test_agreement_verifier_evaluator']:.3f}); guide and evaluator: {q['agreement_guide_evaluator']:.3f}",
        f"- plain sampling hits a given target digit with held-out accuracy {pm(q['plain_target_accuracy'], 'evaluator_acc')} "
        f"(chance level of an unconditional model: about 0.1)",
    ]
    return "\n".join(lines)


def table_main(res: dict) -> str:
    t = res["tables"]["main"]
    ns = list(next(iter(t.values())).keys())
    steps = res["meta"]["settings"]["num_steps"]
    head = "| method | " + " | ".join(f"N = {n} ({int(n) * steps} NFE)" for n in ns) + " |"
    lines = [
        "Held-out evaluator accuracy (mean ± s.e. over seeds); in brackets: the verifier's accuracy on the same samples, and the model NFE actually spent per sample where it differs from the budget.",
        "",
        head,
        "|---|" + "---:|" * len(ns),
    ]
    for key, row in t.items():
        cells = []
        for n in ns:
            d = row[n]
            extra = f"; {d['nfe_per_row']:.0f} NFE" if abs(d["nfe_per_row"] - int(n) * steps) > 0.5 else ""
            cells.append(f"{pm(d, 'evaluator_acc')} ({d['verifier_acc']:.3f}{extra})")
        lines.append(f"| {LABELS.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_ablation(res: dict) -> str:
    lines = [
        "| axis | setting | held-out accuracy | verifier accuracy | verifier reward (log p) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in res["tables"]["ablation"]:
        lines.append(f"| {r['axis']} | {r['label']} | {pm(r, 'evaluator_acc')} | {pm(r, 'verifier_acc')} | {pm(r, 'verifier_reward', 2)} |")
    return "\n".join(lines)


def table_joint(res: dict) -> str:
    curves = res["tables"]["joint"]
    ns = list(next(iter(curves.values())).keys())
    steps = res["meta"]["settings"]["num_steps"]
    lines = [
        "Held-out evaluator accuracy at matched model NFE (in brackets: verifier accuracy; gradient methods also spend one backward pass through the model per NFE).",
        "",
        "| | " + " | ".join(f"{int(n) * steps} NFE" for n in ns) + " |",
        "|---|" + "---:|" * len(ns),
    ]
    for name, row in curves.items():
        lines.append(f"| {name} | " + " | ".join(f"{pm(row[n], 'evaluator_acc')} ({row[n]['verifier_acc']:.3f})" for n in ns) + " |")
    return "\n".join(lines)


def table_hacking(res: dict) -> str:
    lines = [
        "| method (N = 8, 400 NFE) | verifier accuracy | held-out accuracy | gap (overstatement) | grad NFE |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in res["tables"]["hacking"]:
        lines.append(f"| {r['label']} | {pm(r, 'verifier_acc')} | {pm(r, 'evaluator_acc')} | {pm(r, 'gap')} | {r['nfe_grad_per_row']:.0f} |")
    return "\n".join(lines)


TABLES = {"quality": table_quality, "main": table_main, "ablation": table_ablation, "joint": table_joint, "hacking": table_hacking}


def available(res: dict) -> list:
    """The (name, table) pairs whose part the results hold (a partial run has only some)."""
    return [(name, fn) for name, fn in TABLES.items() if (res.get("quality") if name == "quality" else res.get("tables", {}).get(name))]
