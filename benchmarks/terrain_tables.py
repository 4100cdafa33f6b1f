"""The tables of docs/terrain.md and README.md, made from benchmarks/results/terrain.json.

    python benchmarks/terrain.py --tables       # rewrites them (through _common.refresh_tables)

Each table sits between ``<!-- terrain:NAME:begin -->`` and ``<!-- terrain:NAME:end -->`` with NAME in
levels, agreement, main (:data:`TABLES`).
"""

from __future__ import annotations

from _common import pm


def table_levels(res: dict) -> str:
    """Autocorrelation and slope of the x0-predictions per sigma."""
    lines = [
        "| x0-prediction from | heights' lag-1 autocorrelation | mean slope (m per cell) |",
        "|---|---:|---:|",
    ]
    for r in res["tables"]["levels"]:
        what = "one step from sigma 80 (the model's own sampler)" if r["sigma"] is None else f"those samples re-noised to sigma {r['sigma']:g}"
        lines.append(f"| {what} | {pm(r, 'autocorrelation', 4)} | {pm(r, 'slope', 4)} |")
    return "\n".join(lines)


def table_agreement(res: dict) -> str:
    """One line: the torch module against onnxruntime."""
    cells = ", ".join(f"{r['max_abs_diff']:.1e} at sigma {r['sigma']:g}" for r in res["tables"]["agreement"])
    return f"The onnx2torch module against onnxruntime, max |difference| over 2 x 128² outputs: {cells}."


def table_main(res: dict) -> str:
    """Methods at matched NFE: reward, slope, the held-out autocorrelation, relief, NFE."""
    s = res["meta"]["settings"]
    lines = [
        f"N = {s['n']} trajectories of {s['num_steps']} steps per row ({s['n'] * s['num_steps']} model NFE; plain sampling "
        f"{s['num_steps']}), rows = difficulties {', '.join(map(str, s['difficulties']))}, target mean slope {s['target_slope']} m per cell, "
        f"{len(s['seeds'])} seeds; mean ± s.e. over seeds.",
        "",
        "| method | reward | mean slope (m per cell) | autocorrelation (held out) | height std (m) | model NFE | grad NFE |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["tables"]["main"]:
        lines.append(f"| {r['label']} | {pm(r, 'reward')} | {pm(r, 'slope', 4)} | {pm(r, 'autocorrelation', 4)} | {pm(r, 'height_std', 2)} | "
                     f"{r['nfe_per_row']:.0f} | {r['nfe_grad_per_row']:.0f} |")
    return "\n".join(lines)


TABLES = {"levels": table_levels, "agreement": table_agreement, "main": table_main}


def available(res: dict) -> list:
    """The (name, table) pairs whose part the results hold."""
    return [(name, fn) for name, fn in TABLES.items() if res.get("tables", {}).get(name)]
