"""A training run's directory: config.json, metrics.jsonl and the last checkpoint.

Every file is written to a temporary name and renamed into place, so a run killed at any
moment leaves either the previous complete file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tagdata.atomic import atomic_write
from tagdata.errors import UserError
from tagdata.provenance import code_version, cpu_model

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def read_json(path: Path) -> Any:
    """Read a JSON file, turning a missing or corrupt file into a one-line UserError."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON: {err}") from None


def provenance(device: torch.device | str, seed: int | None = None) -> dict[str, Any]:
    """What every result records beside its figures: command, commit, device, seed, versions."""
    import sys

    from tagdata.version import __version__

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()} ({os.cpu_count()} cpus)"
    return {
        "command": " ".join(["tagtool", *sys.argv[1:]]) if sys.argv else "",
        **code_version(),
        "device": f"{device.type}: {name}",
        "threads": torch.get_num_threads(),
        "seed": seed,
        "toolkit_version": __version__,
        "torch_version": torch.__version__,
    }


class RunDir:
    """The files of one training run."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def create(self, config: dict[str, Any], overwrite: bool = False) -> None:
        """Start a fresh run; refuses to clobber an existing one unless asked."""
        if self.config_path.exists() and not overwrite:
            raise UserError(
                f"{self.path} already holds a run: pass --resume to continue it or --overwrite to restart"
            )
        if not self.path.parent.is_dir():
            raise UserError(f"directory {self.path.parent} does not exist")
        self.path.mkdir(exist_ok=True)
        for stale in (self.checkpoint_path, self.metrics_path):
            stale.unlink(missing_ok=True)
        write_json(self.config_path, config)

    def config(self) -> dict[str, Any]:
        """The run's config.json."""
        if not self.path.is_dir():
            raise UserError(f"run directory {self.path} does not exist")
        return read_json(self.config_path)

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed process left behind (atomic_write's ``.NAME.*.tmp``)."""
        for name in (CONFIG, METRICS, CHECKPOINT):
            for stale in self.path.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write the checkpoint atomically."""
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
        """The last checkpoint, or None when the run has none yet."""
        if not self.checkpoint_path.exists():
            return None
        try:
            return torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)
        except Exception as err:  # torch raises many types for a damaged file
            raise UserError(f"checkpoint {self.checkpoint_path} cannot be read: {err}") from None

    def history(self) -> list[dict[str, Any]]:
        """The per-epoch metrics written so far (empty before the first epoch ends)."""
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the checkpointed history, one JSON line per epoch."""
        text = "".join(json.dumps(row) + "\n" for row in history)
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text(text))
