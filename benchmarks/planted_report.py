"""Tables of the planted-recall study (benchmarks/planted.py): found / planted per target and budget,
and each method's total recall with a 95% interval, against LESS and random.

The interval resamples the planted examples of each target with replacement (a stratified
bootstrap), the same draw for every method, so a difference between two methods is paired.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP = 4000
RANDOM = "random (5 seeds)"
REFERENCES = ("less", "g2is")  # each method's paired difference to these, where they ran


def report(data: dict) -> str:
    rows = list(data.get("planted", {}).values())
    out = []
    for group in ("tuning", "confirmation"):
        mine = [r for r in rows if r["group"] == group]
        if mine:
            out.append(group_table(group, mine))
    return "\n\n".join(out) if out else "no planted-recall results yet"


def group_table(group: str, rows: list[dict]) -> str:
    targets = list(dict.fromkeys(r["target"] for r in rows))
    ratios = sorted({r["ratio"] for r in rows})
    methods = [m for m in dict.fromkeys(r["method"] for r in rows)
               if not m.startswith("random seed") and m != "expected random"]
    lines = []
    for ratio in ratios:
        at = {(r["target"], r["method"]): r for r in rows if r["ratio"] == ratio}
        hits = {m: _hits(at, targets, m) for m in methods}
        hits[RANDOM] = _random_hits(at, targets)
        draws = _draws(hits["less"], BOOTSTRAP) if "less" in hits else None
        references = [m for m in REFERENCES if m in hits]
        planted = sum(at[(t, "expected random")]["planted"] for t in targets)
        expected = sum(at[(t, "expected random")]["found"] for t in targets)
        budget = at[(targets[0], "expected random")]["selected"]
        per_target = at[(targets[0], 'expected random')]['planted']
        lines += [(f"**{group} targets, {ratio:.0%} of the pool ({budget} rows)**: planted rows found, of "
                   f"{per_target} per target (at most {min(budget, per_target)} fit the budget: recall "
                   f"{min(budget, per_target) / per_target:.0%}); random's expectation "
                   f"{expected / len(targets):.1f} per target ({expected / planted:.1%})."), "",
                  "| method | " + " | ".join(targets) + " | recall (95% CI) | "
                  + " | ".join(f"vs {m} (95% CI)" for m in references) + " |",
                  "|---|" + "---:|" * (len(targets) + 1 + len(references))]
        for method in [RANDOM, *methods]:
            found = [h.sum(axis=-1).mean() if h.ndim == 2 else h.sum() for h in hits[method]]
            recall, low, high = _interval(hits[method], draws, None)
            versus = ["" if method == ref else "{:+.1%} ({:+.1%}, {:+.1%})".format(
                *_interval(hits[method], draws, hits[ref])) for ref in references]
            cells = [f"{f:.1f}" if method == RANDOM else f"{int(f)}" for f in found]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {recall:.1%} ({low:.1%}, {high:.1%}) | "
                         + " | ".join(versus) + " |")
        lines.append("")
    return "\n".join(lines)


def _hits(at: dict, targets: Sequence[str], method: str) -> list[np.ndarray]:
    return [np.asarray(at[(t, method)]["hits"], dtype=float) for t in targets]


def _random_hits(at: dict, targets: Sequence[str]) -> list[np.ndarray]:
    """Per target, the hits of every random seed: [seeds, planted]."""
    return [np.asarray([r["hits"] for (t, m), r in at.items() if t == target and m.startswith("random seed")],
                       dtype=float) for target in targets]


def _draws(reference: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Bootstrap indices per target, over its planted examples (seeded: the report is reproducible)."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, h.shape[-1], size=(count, h.shape[-1])) for h in reference]


def _total(hits: list[np.ndarray], draws: list[np.ndarray] | None) -> np.ndarray | float:
    """Recall over all targets' planted rows (random: averaged over its seeds), per bootstrap draw."""
    if draws is None:
        return sum(float(h.sum(axis=-1).mean() if h.ndim == 2 else h.sum()) for h in hits) / sum(
            h.shape[-1] for h in hits)
    found = sum((h[..., d].sum(axis=-1).mean(axis=0) if h.ndim == 2 else h[d].sum(axis=-1))
                for h, d in zip(hits, draws, strict=True))
    return found / sum(h.shape[-1] for h in hits)


def _interval(hits: list[np.ndarray], draws: list[np.ndarray] | None,
              minus: list[np.ndarray] | None) -> tuple[float, float, float]:
    point = _total(hits, None) - (_total(minus, None) if minus else 0.0)
    if draws is None:
        return point, float("nan"), float("nan")
    spread = _total(hits, draws) - (_total(minus, draws) if minus else 0.0)
    low, high = np.percentile(spread, [2.5, 97.5])
    return point, float(low), float(high)


def plot(data: dict, path, methods: Sequence[str]) -> None:
    """Recall with its 95% interval per method, one panel per group and budget (confirmation: CONFIRMED only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(data["planted"].values())
    panels = [(g, r) for g in ("tuning", "confirmation") for r in sorted({x["ratio"] for x in rows})
              if any(x["group"] == g for x in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(methods) + 1.6), sharey=True,
                             squeeze=False)
    for ax, (group, ratio) in zip(axes[0], panels, strict=True):
        mine = [x for x in rows if x["group"] == group and x["ratio"] == ratio]
        targets = list(dict.fromkeys(x["target"] for x in mine))
        at = {(x["target"], x["method"]): x for x in mine}
        draws = _draws(_hits(at, targets, "less"), BOOTSTRAP)
        for y, method in enumerate(methods):
            if method != RANDOM and (targets[0], method) not in at:
                continue
            hits = _random_hits(at, targets) if method == RANDOM else _hits(at, targets, method)
            recall, low, high = _interval(hits, draws, None)
            ax.errorbar(recall, y, xerr=[[recall - low], [high - recall]], fmt="o", capsize=3,
                        color="grey" if method == RANDOM else "C0" if method != "g2is-target" else "C3")
        budget = at[(targets[0], "expected random")]["selected"]
        ceiling = min(1.0, budget / at[(targets[0], "expected random")]["planted"])
        ax.axvline(ceiling, color="grey", linestyle="--", linewidth=1, label="the most the budget holds")
        ax.set_title(f"{group}: {ratio:.0%} ({budget} rows)\n{', '.join(targets)}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("planted rows found (recall)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(methods)), methods, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
