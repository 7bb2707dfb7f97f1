"""Draws latency against connections from a results file (run by the bench's virtualenv,
which has matplotlib): ``plot.py RESULTS.json OUT.png``."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path: str, out_path: str) -> None:
    """One panel per scenario: p99 latency (log scale) against subscribers, per server and transport."""
    data = json.load(open(results_path))
    labels = data["labels"]
    panels = [("single", "one message: p99 (ms)"), ("fanout", "burst of messages: p99 (ms)"),
              ("chat", "chat at a steady rate: p99 (ms)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 5.2))
    for ax, (scenario, title) in zip(axes, panels):
        series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
        for run in data["runs"]:
            result = run.get(scenario)
            if result and result.get("p99") is not None:
                series[(run["server"], run["transport"])].append((run["n"], result["p99"]))
        for (server, transport), points in sorted(series.items()):
            points.sort()
            style = "-" if server == "cherrychat" else "--"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o",
                    linewidth=2.4 if server == "cherrychat" else 1.4,
                    label=f"{labels.get(server, server)} / {transport}")
        ax.set_title(title)
        ax.set_xlabel("subscribers (connections)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("publish-to-receive latency, p99 (ms)")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Latency against connections ({data['mode']} mode; server on core 0, generator on core 1)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
