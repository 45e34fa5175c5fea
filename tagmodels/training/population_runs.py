"""A population's folder: one ordinary run directory per member and population.json naming them.

Each member's directory (``seed-3``, or ``seed-3-lr-0.002`` in a learning-rate sweep) is a run
like any other, so ``evaluate``, ``visualize``, ``load_run`` and best.pt work on it unchanged;
population.json lets ``train --resume`` continue every member of the folder together.
"""

from __future__ import annotations

import json
from pathlib import Path

from tagdata.atomic import atomic_write
from tagdata.errors import UserError

POPULATION = "population.json"


def member_names(seeds: list[int], lrs: list[float] | None) -> list[tuple[str, int, float | None]]:
    """(directory name, seed, learning rate or None for the preset's) of every member: each
    seed, with each learning rate of a sweep."""
    if lrs is None:
        return [(f"seed-{seed}", seed, None) for seed in seeds]
    return [(f"seed-{seed}-lr-{lr:g}", seed, lr) for seed in seeds for lr in lrs]


def write_population(folder: Path, names: list[str]) -> None:
    """population.json in ``folder`` (which must be new or hold this population), atomically."""
    path = folder / POPULATION
    if path.exists() and read_population(folder) != names:
        raise UserError(f"{folder} holds another population ({path}); give another --out")
    folder.mkdir(exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps({"members": names}, indent=1) + "\n"))


def read_population(folder: Path) -> list[str] | None:
    """The member directories population.json names, or None when ``folder`` holds none."""
    path = Path(folder) / POPULATION
    if not path.exists():
        return None
    try:
        names = json.loads(path.read_text())["members"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is damaged ({type(error).__name__}); delete the folder and train again") from None
    if not (isinstance(names, list) and names and all(isinstance(name, str) and "/" not in name for name in names)):
        raise UserError(f"{path} must list the member directories under 'members'")
    return names
