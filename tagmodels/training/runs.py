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

from tagdata import locking
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
RUN_FILES = (CONFIG, CHECKPOINT, BEST, METRICS, METRICS_CSV, TENSORBOARD)


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


def last_epoch(history: list[dict[str, Any]]) -> int:
    """The epoch a history (a checkpoint's) ends at: the one that checkpoint holds; 0 before the first."""
    return int(history[-1]["epoch"]) if history else 0


def _stamp(path: Path) -> tuple[int, int] | None:
    """What changes when ``path`` is replaced (atomic writes make a new inode), or None."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


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
        """Start a fresh run; refuses to clobber an existing one (even one whose config.json
        is gone) unless asked, and a directory another process is writing in any case."""
        if not overwrite:
            if self.config_path.exists():
                raise UserError(
                    f"{self.path} already holds a run: pass --resume to continue it or --overwrite to restart"
                )
            found = [name for name in RUN_FILES if (self.path / name).exists()]
            if found:
                raise UserError(
                    f"{self.path} holds {', '.join(found)} of a run without config.json: "
                    "pass --overwrite to replace them, or give another --out"
                )
        if not self.path.parent.is_dir():
            raise UserError(f"directory {self.path.parent} does not exist")
        made = not self.path.exists()
        try:
            self.path.mkdir(exist_ok=True)
            self.claim()
            for stale in (self.checkpoint_path, self.best_path, self.metrics_path, self.csv_path):
                stale.unlink(missing_ok=True)
            shutil.rmtree(self.tensorboard_path, ignore_errors=True)
            write_json(self.config_path, config)
        except BaseException as err:
            if made:
                self.release()
            if made and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()
            if isinstance(err, OSError):
                raise UserError(f"cannot write {self.path}: {storage_failure(err)}") from None
            raise

    def claim(self) -> None:
        """Hold the run directory's lock for this process (:mod:`tagdata.locking`): called
        before each write, so that a second process writing the same run is refused."""
        locking.claim(self.path, "--out")

    def release(self) -> None:
        """Give up the run directory's lock."""
        locking.release(self.path)

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
                self.release()
                if not existed and not any(self.path.iterdir()):
                    self.path.rmdir()
            raise

    @contextmanager
    def resumed(self, config: dict[str, Any]) -> Iterator[None]:
        """Record a resume in config.json for the block that trains it; if the block fails
        (a damaged checkpoint, data of another kind, an interrupt) before it checkpoints an
        epoch, put config.json back as it was: a failed resume leaves no trace of itself."""
        self.claim()
        before = self.config_path.read_bytes()
        checkpoint = _stamp(self.checkpoint_path)
        write_json(self.config_path, config)
        try:
            yield
        except BaseException:
            if _stamp(self.checkpoint_path) == checkpoint:
                atomic_write(self.config_path, lambda tmp: tmp.write_bytes(before))
            raise

    def config(self) -> dict[str, Any]:
        """The run's config.json (a JSON object; what it must hold is checked by its reader)."""
        if not self.path.is_dir():
            raise UserError(f"run directory {self.path} does not exist")
        config = read_json(self.config_path)
        if not isinstance(config, dict):
            raise UserError(f"{self.config_path} is not a run's config (a JSON {type(config).__name__}, not an object)")
        return config

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed process left behind (atomic_write's ``.NAME.*.tmp``);
        the first step of training, so it claims the run directory."""
        self.claim()
        for name in (CONFIG, METRICS, METRICS_CSV, CHECKPOINT, BEST):
            remove_stale_temporaries(self.path / name)

    def save_checkpoint(self, state: dict[str, Any], which: str = "last") -> None:
        """Write the last (or the best) checkpoint atomically."""
        self.claim()

        def save(tmp: Path) -> None:
            # Through a file object: a failed write then raises OSError naming the cause,
            # where torch.save(path) reports only an offset mismatch.
            with open(tmp, "wb") as file:
                torch.save(state, file)

        atomic_write(self._checkpoint(which), save)

    def load_checkpoint(self, map_location: torch.device | str = "cpu", which: str = "last") -> dict[str, Any] | None:
        """The last (or best) checkpoint, or None when the run has none yet; a damaged or
        foreign file is one line, not torch's page of unpickling text."""
        path = self._checkpoint(which)
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:  # torch raises many types for a damaged file
            text = str(err).strip()
            cause = text.splitlines()[0].split(". ")[0][:100] if text else type(err).__name__  # its first sentence
            raise UserError(f"checkpoint {path} cannot be read (damaged or cut short? {cause})") from None
        if not (isinstance(state, dict) and isinstance(state.get("model"), dict)
                and isinstance(state.get("history"), list)
                and all(isinstance(row, dict) and isinstance(row.get("epoch"), int) for row in state["history"])):
            raise UserError(f"{path} is not a checkpoint written by tagtool (no model parameters and history)")
        return state

    def _checkpoint(self, which: str) -> Path:
        if which not in CHECKPOINTS:
            raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {which!r}")
        return self.checkpoint_path if which == "last" else self.best_path

    def history(self) -> list[dict[str, Any]]:
        """The per-epoch metrics written so far (empty before the first epoch ends); a
        damaged or foreign metrics.jsonl is one line naming the file and the line."""
        if not self.metrics_path.exists():
            return []
        rows = []
        lines = self.metrics_path.read_text(errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise UserError(
                    f"{self.metrics_path}, line {number}, is not a metrics line (cut short, or another file?); "
                    f"`tagtool train --out {self.path} --resume` rewrites it from the checkpoint"
                )
            rows.append(row)
        return rows

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the checkpointed history, one JSON line per epoch."""
        self.claim()
        text = "".join(json_text(row) + "\n" for row in history)
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text(text))
