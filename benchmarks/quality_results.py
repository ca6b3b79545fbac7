"""The quality experiment's JSON of record: written as results come in (:class:`Results`), read
back as a markdown table and a plot. benchmarks/quality.py runs the experiment that fills it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwalk.atomic import write_text

# Settings a later run may extend (rows are added for new values); they are not in the settings key.
ADDITIVE = ("targets", "ratios", "random_seeds")


class Results:
    """The JSON of record: settings, stage times, per-target facts, selections and result rows,
    rewritten atomically after each change. ``settings`` is the experiment's frozen dataclass, whose
    ``key()`` hashes every field but the ADDITIVE ones."""

    def __init__(self, path: Path, settings: Any, restart: bool) -> None:
        self.path = path
        self.started = time.time()
        if path.is_file() and not restart:
            self.data = json.loads(path.read_text())
            if self.data.get("settings_key") != settings.key():
                raise SystemExit(f"{path} holds results of other settings (key {self.data.get('settings_key')}, "
                                 f"these are {settings.key()}): pass --restart to start it over")
            for name in ADDITIVE:  # the union, in first-seen order
                old = self.data["settings"][name]
                self.data["settings"][name] = old + [v for v in getattr(settings, name) if v not in old]
        else:
            self.data = {"settings_key": settings.key(), "settings": dataclasses.asdict(settings),
                         "runs": [], "stages": {}, "pool": {}, "targets": {}, "selections": {},
                         "results": []}
        self.data["runs"].append({"started": _utc(self.started), "finished": None, "seconds": 0.0,
                                  "torch_threads": None})
        self.save()

    @staticmethod
    def key(target: str, method: str, ratio: float | None, seed: int | None) -> str:
        return f"{target}|{method}|{ratio}|{seed}"

    def has(self, *key_parts) -> bool:
        key = self.key(*key_parts)
        return any(r["key"] == key for r in self.data["results"])

    def find_subset(self, target: str, subset: str) -> dict | None:
        return next((r for r in self.data["results"] if r["target"] == target and r.get("subset") == subset), None)

    def add(self, target: str, method: str, ratio: float | None, seed: int | None, fields: dict) -> None:
        """Record one result row (replacing the row of the same key) and save."""
        row = {"key": self.key(target, method, ratio, seed), "target": target, "method": method, "ratio": ratio,
               "seed": seed}
        row |= {k: v for k, v in fields.items() if k not in row}
        self.data["results"] = [r for r in self.data["results"] if r["key"] != row["key"]] + [row]
        self.save()

    def save(self) -> None:
        run = self.data["runs"][-1]
        run["finished"] = _utc(time.time())
        run["seconds"] = round(time.time() - self.started, 1)
        self.data["wall_seconds"] = round(sum(r["seconds"] for r in self.data["runs"]), 1)
        write_text(self.path, json.dumps(self.data, indent=1) + "\n")


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _rows(data: dict, target: str, method: str, ratio: float | None) -> list[dict]:
    return [r for r in data["results"] if r["target"] == target and r["method"] == method and r["ratio"] == ratio]


def table(data: dict, methods: Sequence[str]) -> str:
    """Markdown: per target, test loss (and accuracy) of the base model and of `methods` (in that
    order) at every ratio; random as mean, with its min-max over seeds."""
    s = data["settings"]
    lines = []
    for target in s["targets"]:
        info = data["targets"].get(target, {})
        mc = "chance" in info and s.get("mc_accuracy", True)
        head = "| method | " + " | ".join(
            f"loss @{r:.0%}" + (f" | acc @{r:.0%}" if mc else "") for r in s["ratios"]) + " |"
        lines += [f"**{target}** (test n={info.get('test', '?')}"
                  + (f", chance accuracy {info['chance']:.3f}" if mc else "") + ")", "", head,
                  "|" + "---|" * (1 + len(s["ratios"]) * (2 if mc else 1))]
        base = _rows(data, target, "base", None)
        if base:
            cells = []
            for _ in s["ratios"]:
                cells.append(f"{base[0]['test_loss']:.4f}")
                if mc:
                    cells.append(f"{base[0]['accuracy']:.3f}")
            lines.append("| base model (no fine-tune) | " + " | ".join(cells) + " |")
        for method in methods:
            cells = []
            for ratio in s["ratios"]:
                rows = _rows(data, target, method, ratio)
                for metric in ("test_loss", "accuracy") if mc else ("test_loss",):
                    values = [r[metric] for r in rows if metric in r]
                    fmt = "{:.4f}" if metric == "test_loss" else "{:.3f}"
                    if not values:
                        cells.append("–")
                    elif method == "random":
                        cells.append(fmt.format(np.mean(values)) + f" ({fmt.format(min(values))}–"
                                     f"{fmt.format(max(values))}, {len(values)} seeds)")
                    else:
                        cells.append(fmt.format(values[0]))
            label = method + (" (mean, min–max)" if method == "random" else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(data: dict, path: Path, methods: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = data["settings"]
    targets = s["targets"]
    mc = [t for t in targets if "chance" in data["targets"].get(t, {}) and s.get("mc_accuracy", True)]
    panels = [(t, "test_loss") for t in targets] + [(t, "accuracy") for t in mc]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (target, metric) in zip(axes[0], panels, strict=False):
        for j, ratio in enumerate(s["ratios"]):
            offset = (j - (len(s["ratios"]) - 1) / 2) * 0.3
            for i, method in enumerate(methods):
                values = [r[metric] for r in _rows(data, target, method, ratio) if metric in r]
                if not values:
                    continue
                x = i + offset
                ax.scatter([x] * len(values), values, color=colors(j), s=28 if method != "random" else 14,
                           alpha=0.9 if method != "random" else 0.6,
                           label=f"{ratio:.0%} of pool" if i == 0 else None, zorder=3)
                if method == "random":
                    ax.plot([x - 0.12, x + 0.12], [np.mean(values)] * 2, color=colors(j), lw=2)
            randoms = [r[metric] for r in _rows(data, target, "random", ratio) if metric in r]
            if len(randoms) > 1:
                ax.axhspan(min(randoms), max(randoms), color=colors(j), alpha=0.08, zorder=1)
        base = _rows(data, target, "base", None)
        if base and metric in base[0]:
            ax.axhline(base[0][metric], color="gray", ls="--", lw=1, label="base model")
        if metric == "accuracy":
            ax.axhline(data["targets"][target]["chance"], color="black", ls=":", lw=1, label="chance")
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{target}: {'held-out loss' if metric == 'test_loss' else 'accuracy'}", fontsize=10)
        ax.set_ylabel("mean response-token loss (lower is better)" if metric == "test_loss"
                      else "option-likelihood accuracy")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    pilot = "PILOT, below the issue's 5,000 floor: " if s["pool_size"] < 5_000 else ""
    tests = ", ".join(f"{t} n={data['targets'].get(t, {}).get('test', '?')}" for t in targets)
    fig.suptitle(f"{pilot}SmolLM2-135M LoRA fine-tuned on subsets of a {s['pool_size']:,}-example pool "
                 f"({s['ft_steps']} steps x {s['ft_batch']})\nheld-out test: {tests}; shaded: random seeds' range",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


