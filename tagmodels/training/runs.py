"""A training run's directory: config.json, metrics.jsonl (and .csv), the last checkpoint
and the best one.

Every file is written to a temporary name and renamed into place, so a run killed at any
moment leaves either the previous complete file or the new one, never half of one. JSON is
written strictly: a non-finite number (NaN, infinity) becomes ``null``, never the bare
``NaN`` that JSON readers reject.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from tagdata.atomic import atomic_write, remove_stale_temporaries, storage_failure
from tagdata.errors import UserError
from tagdata.provenance import code_version, cpu_model, portable_command

CONFIG = "config.json"
METRICS = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
TENSORBOARD = "tensorboard"
CHECKPOINTS = ("last", "best")


def finite_or_none(data: Any) -> Any:
    """``data`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def json_text(data: Any, indent: int | None = None) -> str:
    """Strict JSON: non-finite numbers written as null."""
    return json.dumps(finite_or_none(data), indent=indent, allow_nan=False)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json_text(data, indent=2) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


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
        "command": portable_command(["tagtool", *sys.argv[1:]]) if sys.argv else "",
        **code_version(),
        "device": f"{device.type}: {name}",
        "threads": torch.get_num_threads(),
        "seed": seed,
        "toolkit_version": __version__,
        "torch_version": torch.__version__,
    }


class _File:
    """A path in the run directory, read as an attribute: ``run.config_path``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: "RunDir", owner: type | None = None) -> Path:
        return run.path / self.name


class RunDir:
    """The files of one training run."""

    config_path = _File(CONFIG)
    checkpoint_path = _File(CHECKPOINT)
    best_path = _File(BEST)
    metrics_path = _File(METRICS)
    csv_path = _File(METRICS_CSV)
    tensorboard_path = _File(TENSORBOARD)

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def create(self, config: dict[str, Any], overwrite: bool = False) -> None:
        """Start a fresh run; refuses to clobber an existing one unless asked."""
        if self.config_path.exists() and not overwrite:
            raise UserError(
                f"{self.path} already holds a run: pass --resume to continue it or --overwrite to restart"
            )
        if not self.path.parent.is_dir():
            raise UserError(f"directory {self.path.parent} does not exist")
        made = not self.path.exists()
        try:
            self.path.mkdir(exist_ok=True)
            for stale in (self.checkpoint_path, self.best_path, self.metrics_path, self.csv_path):
                stale.unlink(missing_ok=True)
            shutil.rmtree(self.tensorboard_path, ignore_errors=True)
            write_json(self.config_path, config)
        except BaseException as err:
            if made and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()
            if isinstance(err, OSError):
                raise UserError(f"cannot write {self.path}: {storage_failure(err)}") from None
            raise

    @contextmanager
    def started(self, config: dict[str, Any], overwrite: bool = False) -> Iterator[None]:
        """Create the run for the block that trains it; if the block fails (or is
        interrupted) before the first epoch is checkpointed, remove the run again, so that
        a failed start leaves nothing the next attempt would mistake for a run to resume."""
        existed = self.path.exists()
        self.create(config, overwrite)
        try:
            yield
        except BaseException:
            if not self.checkpoint_path.exists():
                for name in (CONFIG, METRICS, METRICS_CSV):
                    (self.path / name).unlink(missing_ok=True)
                if not existed and not any(self.path.iterdir()):
                    self.path.rmdir()
            raise

    def config(self) -> dict[str, Any]:
        """The run's config.json."""
        if not self.path.is_dir():
            raise UserError(f"run directory {self.path} does not exist")
        return read_json(self.config_path)

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed process left behind (atomic_write's ``.NAME.*.tmp``)."""
        for name in (CONFIG, METRICS, METRICS_CSV, CHECKPOINT, BEST):
            remove_stale_temporaries(self.path / name)

    def save_checkpoint(self, state: dict[str, Any], which: str = "last") -> None:
        """Write the last (or the best) checkpoint atomically."""

        def save(tmp: Path) -> None:
            # Through a file object: a failed write then raises OSError naming the cause,
            # where torch.save(path) reports only an offset mismatch.
            with open(tmp, "wb") as file:
                torch.save(state, file)

        atomic_write(self._checkpoint(which), save)

    def load_checkpoint(self, map_location: torch.device | str = "cpu", which: str = "last") -> dict[str, Any] | None:
        """The last (or best) checkpoint, or None when the run has none yet."""
        path = self._checkpoint(which)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:  # torch raises many types for a damaged file
            raise UserError(f"checkpoint {path} cannot be read: {err}") from None

    def _checkpoint(self, which: str) -> Path:
        if which not in CHECKPOINTS:
            raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {which!r}")
        return self.checkpoint_path if which == "last" else self.best_path

    def history(self) -> list[dict[str, Any]]:
        """The per-epoch metrics written so far (empty before the first epoch ends)."""
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the checkpointed history, one JSON line per epoch."""
        text = "".join(json_text(row) + "\n" for row in history)
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text(text))
