"""The paper's own figures (Tables 1 and 2), for results to be reported beside them."""

from __future__ import annotations

# Table 1a, Shapes, after iterations 1..5 (K = 4 groups, trained with 3 iterations):
# Tagger with BatchNorm ("batch") and Tagger* with LayerNorm ("layer").
TABLE_1A: dict[str, dict[str, tuple[float, ...]]] = {
    "batch": {"denoising_cost": (0.094, 0.068, 0.063, 0.063, 0.063), "ami": (0.58, 0.73, 0.77, 0.79, 0.79)},
    "layer": {"denoising_cost": (0.100, 0.069, 0.057, 0.054, 0.054), "ami": (0.70, 0.90, 0.95, 0.96, 0.97)},
}
# Table 1b, Shapes AMI: (median over 20 seeds, its spread as the paper prints it).
TABLE_1B: dict[str, tuple[float, float]] = {"RC": (0.61, 0.005), "Tagger": (0.79, 0.034), "Tagger*": (0.97, 0.009)}
SHAPES_TRAINING_HOURS = 3.0  # 100 epochs on one Titan X

# Table 2: test error in percent, (mean, sample std) over 5 runs, per label budget.
TABLE_2: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("texture-mnist1", "fc-mlp"): {"50000": (31.1, 2.2), "1000": (89.0, 0.2)},
    ("texture-mnist1", "fc-ladder"): {"50000": (7.2, 0.1), "1000": (30.5, 0.5)},
    ("texture-mnist1", "tagger"): {"50000": (4.0, 0.3), "1000": (10.5, 0.9)},
    ("texture-mnist1", "convnet"): {"50000": (3.9, 0.3), "1000": (52.4, 5.3)},
    ("texture-mnist2", "fc-mlp"): {"50000": (55.2, 1.0), "1000": (79.4, 0.3)},
    ("texture-mnist2", "fc-ladder"): {"50000": (41.1, 0.2), "1000": (68.5, 0.2)},
    ("texture-mnist2", "tagger"): {"50000": (7.9, 0.3), "1000": (24.9, 1.8)},
    ("texture-mnist2", "convnet"): {"50000": (12.6, 0.4), "1000": (79.1, 0.8)},
}


def table_1a_beside(norm: str, rows: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """The paper's Table 1a figures for the iterations in ``rows`` (None past iteration 5)."""
    paper = TABLE_1A[norm]
    return [
        {
            "iteration": row["iteration"],
            "ami": paper["ami"][row["iteration"] - 1] if row["iteration"] <= 5 else None,
            "denoising_cost": paper["denoising_cost"][row["iteration"] - 1] if row["iteration"] <= 5 else None,
        }
        for row in rows
    ]
