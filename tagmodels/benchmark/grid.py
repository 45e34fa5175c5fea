"""The Table 2 grid: make the datasets, run every cell, skip finished ones, resume the rest.

Layout of a benchmark directory (one scale per directory):

    benchmark.json                       the scale, so that scales never mix
    data/<dataset>.h5                    made from the MNIST files on first use
    runs/<cell>/config.json ...          one training run per cell (tagmodels.training.runs.RunDir)
    runs/<cell>/result.json              written atomically when the cell is done
    tagger-unsupervised/<dataset>[-permuted]_seed<s>/
                                         Tagger's unsupervised phase, shared by both label
                                         budgets (it uses no labels)
    table.md                             rendered from every result.json (tagmodels.benchmark.table)
    plan.json                            the planned cells (tagmodels.benchmark.plan)
    state/                               locks and failure records of the cells being run by
                                         several processes at once (tagmodels.benchmark.executors)

A cell with a result.json is skipped; a cell with a run but no result resumes from its last
checkpoint (exactly, see tagmodels.training.loop); a run started with other settings is refused
rather than silently mixed.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

import tagdata
from tagdata.errors import UserError
from tagdata.provenance import portable_path
from tagmodels import zoo
from tagmodels.benchmark.label_budget import labelled_subset
from tagmodels.benchmark.locks import exclusive
from tagmodels.benchmark.permutation import permute_split, pixel_permutation
from tagmodels.benchmark.settings import BUDGETS, DATASETS, METHODS, Choices, Scale
from tagmodels.benchmark.table import read_result
from tagmodels.benchmark.usage import peak_memory_mib, reset_peak_memory, samples_per_second
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.classifier import TaggerClassifier
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.classification import (
    ClassificationObjective,
    classification_error,
)
from tagmodels.training.data import SplitTensors, load_split
from tagmodels.training.grouping import new_run_config, train_taggers
from tagmodels.training.divergence import TrainingDiverged
from tagmodels.training.loop import Member, Schedule, fit_population, training_seconds
from tagmodels.training.runs import RunDir, provenance, read_json, write_json

# A Tagger cell's unsupervised phase: its Tagger and summary ((None, None) for the other
# methods), or the divergence that stopped it, or None where a deadline stopped it.
Phase = tuple[Tagger | None, dict[str, Any] | None] | TrainingDiverged | None
RESULT = "result.json"
META = "benchmark.json"
STATE = "state"  # lock files: two processes never make one dataset or train one phase at once


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a method on a dataset with a label budget and a seed."""

    method: str
    dataset: str
    labels: str  # "50000" (every label) or "1000"
    seed: int
    permuted: bool = False

    @property
    def population(self) -> tuple[str, str, str, bool]:
        """What the cells that train together as one population share: all but the seed."""
        return self.method, self.dataset, self.labels, self.permuted

    @property
    def name(self) -> str:
        order = "-permuted" if self.permuted else ""
        return f"{self.method}_{self.dataset}_{self.labels}{order}_seed{self.seed}"


def grid(methods: Iterable[str], datasets: Iterable[str], labels: Iterable[str], seeds: int, permuted: bool) -> list[Cell]:
    """Every cell, seed-major so that a partial grid already fills the whole table."""
    return [
        Cell(method, dataset, budget, seed, permuted)
        for seed in range(seeds)
        for dataset in datasets
        for budget in labels
        for method in methods
    ]


# The permuted-pixel columns of the grid (docs/benchmark.md, the Makefile's table2-cpu): the
# ConvNet, whose prior is the image's layout, and the FC Tagger on TextureMNIST2, which has none.
PERMUTED = (("convnet", DATASETS), ("tagger", ("texture-mnist2",)))


def table2_cells(seeds: int) -> list[Cell]:
    """Every cell of Table 2 and its permuted columns for seeds 0..N-1, seed-major."""
    cells = grid(METHODS, DATASETS, BUDGETS, seeds, False)
    for method, datasets in PERMUTED:
        cells += grid([method], datasets, BUDGETS, seeds, True)
    return sorted(cells, key=lambda cell: cell.seed)  # stable: the paper's order within a seed


@dataclass
class Splits:
    """The splits a cell uses, on the benchmark's device."""

    path: Path
    train: SplitTensors
    valid: SplitTensors
    test: SplitTensors

    def permuted(self, seed: int) -> "Splits":
        perm = pixel_permutation(self.train.x.shape[1], seed)
        return Splits(self.path, *(permute_split(s, perm) for s in (self.train, self.valid, self.test)))


def build_classifier(method: str, settings: dict[str, Any], train: SplitTensors, tagger: Tagger | None = None) -> nn.Module:
    """A fresh classifier of ``method`` for images like ``train``'s (Tagger: grown from ``tagger``)."""
    if method == "tagger":
        assert tagger is not None, "the Tagger classifier grows from a trained Tagger"
        return TaggerClassifier(
            tagger, settings["fresh_widths"], settings["groups"], settings["iterations"],
            settings["noise"], settings["classification_weight"],
        )
    n_inputs = train.x.shape[1]
    if method == "fc-mlp":
        return zoo.create(method, n_inputs=n_inputs, widths=settings["widths"])
    if method == "fc-ladder":
        return zoo.create(
            method, n_inputs=n_inputs, widths=settings["widths"], noise_std=settings["noise_std"],
            denoising_weights=settings["denoising_weights"],
            normalise_reconstruction=settings.get("normalise_reconstruction", False),  # absent in older runs
        )
    if method == "convnet":
        return zoo.create(method, image_size=tuple(train.images.shape[-2:]), channels=tuple(settings["channels"]))
    raise UserError(f"unknown method {method!r}")


def unsupervised_run(out: Path, cell: Cell) -> RunDir:
    """The run of Tagger's unsupervised phase a cell grows from (shared by both label budgets)."""
    order = "-permuted" if cell.permuted else ""
    return RunDir(out / "tagger-unsupervised" / f"{cell.dataset}{order}_seed{cell.seed}")


def rebuild_cell_model(run: RunDir, config: dict[str, Any]) -> nn.Module:
    """The untrained classifier of a cell's run directory (``out/runs/<cell>``), for loading."""
    cell = Cell(**config["cell"])
    train = load_split(config["data"], "train", limit=1)
    tagger = None
    if cell.method == "tagger":
        phase = unsupervised_run(run.path.parent.parent, cell).config()
        tagger = Tagger(TaggerConfig.from_dict(phase["tagger"]))
    return build_classifier(cell.method, config["settings"], train, tagger)


def open_directory(out: Path, scale: Scale) -> None:
    """Create a benchmark directory (or check that it holds ``scale``'s benchmark)."""
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"directory {out.parent} does not exist")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    meta = out / META
    held = read_json(meta) if meta.exists() else {}
    if not isinstance(held, dict):
        raise UserError(f"{meta} is not a benchmark's record (a JSON object naming its scale)")
    if held.get("scale") not in (None, scale.name):
        raise UserError(
            f"{out} holds a {held['scale']}-scale benchmark; use another --out for --scale {scale.name}"
        )
    try:
        held_choices = Choices(**held.get("choices", {}))
    except TypeError:
        raise UserError(f"{meta}: 'choices' holds unknown fields; delete the file or use another --out") from None
    if held and held_choices != scale.choices:
        raise UserError(
            f"{out} holds a benchmark with other choices ({held_choices.describe() or 'the defaults'}); "
            f"use another --out for {scale.choices.describe() or 'the defaults'}"
        )
    for sub in ("data", "runs", "tagger-unsupervised"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if not held:
        choices = scale.choices.to_dict()
        write_json(meta, {"scale": scale.name, "note": scale.note, "choices": choices})


class Benchmark:
    """Runs cells of one scale into one directory."""

    def __init__(
        self,
        out: Path | str,
        scale: Scale,
        device: torch.device,
        mnist_dir: str | None = None,
        progress: bool = False,
        log: Callable[[str], None] = print,
        precision: str = "fp32",
        compile: bool = False,
        adapt_threads: bool = False,
        executor: dict[str, Any] | None = None,
    ) -> None:
        self.out = Path(out)
        self.executor = executor or {"executor": "inline"}
        self.precision = precision
        self.compile = compile
        self.adapt_threads = adapt_threads
        self.scale = scale
        self.device = device
        self.mnist_dir = mnist_dir
        self.progress = progress
        self.log = log
        self._splits: dict[str, Splits] = {}

    def open(self) -> None:
        """Create the directory (or check that it holds this scale's benchmark)."""
        open_directory(self.out, self.scale)

    # ------------------------------------------------------------------ data

    def dataset_path(self, dataset: str) -> Path:
        """The dataset's file in the benchmark directory, made from MNIST when missing."""
        path = self.out / "data" / f"{dataset}.h5"
        if not path.exists():
            with exclusive(self.out / STATE / f"data-{dataset}.lock"):
                if not path.exists():  # made by another process while this one waited
                    spec = tagdata.resolve_spec(dataset)
                    if self.scale.splits is not None:
                        spec = tagdata.with_overrides(spec, **self.scale.splits)
                    self.log(f"making {path} from the MNIST files")
                    tagdata.make_dataset(spec, path, mnist_dir=self.mnist_dir)
        return path

    def splits(self, dataset: str) -> Splits:
        """train, valid (the per-epoch subset) and test of a dataset, loaded once."""
        if dataset not in self._splits:
            path = self.dataset_path(dataset)
            with tagdata.open_dataset(path) as file:
                if file.name != dataset:
                    raise UserError(f"{path} holds {file.name} ({file.kind}) data, not {dataset}; "
                                    "delete it to have it made again")
            train = load_split(str(path), "train", self.device)
            expected = (self.scale.splits or {}).get("train")
            if expected is not None and len(train) != expected:
                raise UserError(
                    f"{path} holds {len(train)} training examples but the {self.scale.name} scale uses "
                    f"{expected}; delete it to have it made again"
                )
            valid = load_split(str(path), "valid", self.device, limit=self.scale.valid_examples)
            test = load_split(str(path), "test", self.device)
            self._splits[dataset] = Splits(path, train, valid, test)
        return self._splits[dataset]

    # ------------------------------------------------------------------ runs

    def result_path(self, cell: Cell) -> Path:
        return self.out / "runs" / cell.name / RESULT

    def run(self, cell: Cell) -> tuple[dict[str, Any], bool]:
        """The cell's result, and whether it was computed now (False: it existed)."""
        path = self.result_path(cell)
        if path.exists():
            return read_result(path), False
        (outcome,) = self.run_seeds([cell])
        if isinstance(outcome, Exception):
            raise outcome
        assert outcome is not None, "no deadline, so the cell ran to its end"
        return outcome, True

    def run_seeds(
        self, cells: list[Cell], deadline: float | None = None
    ) -> list[dict[str, Any] | TrainingDiverged | None]:
        """Cells that differ only in their seed, none done yet, trained as one population
        (tagmodels.training.loop.fit_population: batched on a GPU, one member after another on
        a CPU, each member's trajectory that of its cell alone). Each cell's result, the
        divergence that stopped it while the others went on, or None where ``deadline``
        stopped it before its last epoch (it resumes next time)."""
        if len({cell.population for cell in cells}) != 1:
            raise ValueError("a population's cells differ only in their seed")
        started = time.perf_counter()
        reset_peak_memory(self.device)
        method, labels = cells[0].method, cells[0].labels
        settings = self.scale.settings(method, labels)
        cell_splits = [self._cell_splits(cell) for cell in cells]
        phases: list[Phase] = [(None, None)] * len(cells)
        if method == "tagger":
            phases = self._unsupervised_taggers(cells, cell_splits, deadline)
            if deadline is not None and time.perf_counter() >= deadline:  # no time left for the supervised phase
                phases = [phase if isinstance(phase, TrainingDiverged) else None for phase in phases]
        # Cells whose unsupervised phase diverged, or stopped at the deadline (None: they resume).
        stopped = {cell: phase for cell, phase in zip(cells, phases) if not isinstance(phase, tuple)}
        members, prepared = [], []
        for cell, splits, phase in zip(cells, cell_splits, phases):
            if not isinstance(phase, tuple):
                continue
            run = RunDir(self.result_path(cell).parent)
            identity = {
                "cell": asdict(cell), "scale": self.scale.name, "settings": settings,
                "execution": {"precision": self.precision, "compile": self.compile},
            }
            resumed = self._open_run(run, identity, splits)
            tagger, unsupervised = phase
            torch.manual_seed(cell.seed)
            model = build_classifier(method, settings, splits.train, tagger).to(self.device)
            labelled = labelled_subset(splits.train.labels, labels, cell.seed)
            objective = ClassificationObjective(model, splits.train, labelled, splits.valid, settings["batch_size"])
            schedule = Schedule(
                settings["epochs"], settings["lr"], settings["batch_size"], cell.seed, settings.get("lr_decay_from")
            )
            members.append(Member(objective, schedule, run))
            prepared.append((cell, splits, labelled, resumed, unsupervised, identity))
        trained = fit_population(
            members, members[0].objective.n_train, resume=True, progress=self.progress, precision=self.precision,
            compile=self.compile, adapt_threads=self.adapt_threads, deadline=deadline,
        ) if members else []
        outcomes: dict[Cell, dict[str, Any] | TrainingDiverged | None] = dict(stopped)
        for member, (cell, splits, labelled, resumed, unsupervised, identity), done in zip(members, prepared, trained):
            if done.diverged is not None or done.cut:
                outcomes[cell] = done.diverged
                continue
            evaluated = time.perf_counter()
            error = classification_error(member.objective.model, splits.test, settings["batch_size"])
            now = time.perf_counter()
            result = {
                **identity["cell"],
                "scale": self.scale.name,
                "test_error": error,
                "test_examples": len(splits.test),
                "train_examples": len(splits.train),
                "labelled_examples": len(splits.train) if labelled is None else len(labelled),
                "epochs": len(done.history),
                "resumed_at_epoch": resumed,
                "final_valid_error": done.history[-1]["valid_error"] if done.history else None,
                "train_seconds": training_seconds(done.history),
                "eval_seconds": round(now - evaluated, 3),
                "wall_seconds": round(now - started, 3),
                "samples_per_second": samples_per_second(done.history, member.objective.n_train),
                "peak_memory_mib": peak_memory_mib(self.device),
                "population": len(cells),  # members trained together: their seconds are the population's
                "executor": self.executor.get("executor"),
                "job_id": self.executor.get("job_id"),
                "unsupervised_phase": unsupervised,
                "settings": settings,
                "execution": identity["execution"],
                "data": portable_path(splits.path),
                **provenance(self.device, cell.seed),
            }
            write_json(self.result_path(cell), result)
            outcomes[cell] = result
        return [outcomes[cell] for cell in cells]

    def _cell_splits(self, cell: Cell) -> Splits:
        splits = self.splits(cell.dataset)
        return splits.permuted(cell.seed) if cell.permuted else splits

    def _open_run(self, run: RunDir, identity: dict[str, Any], splits: Splits) -> int:
        """Create the cell's run, or check a half-finished one; returns the epochs it already has."""
        if run.config_path.exists():
            held = run.config()
            if {key: held.get(key) for key in identity} != identity:
                raise UserError(f"{run.path} was started with other settings; delete it to run the cell again")
            checkpoint = run.load_checkpoint()
            return 0 if checkpoint is None else len(checkpoint["history"])
        run.create({**identity, "data": str(splits.path.resolve()), "provenance": provenance(self.device, identity["cell"]["seed"])})
        return 0

    def _unsupervised_taggers(
        self, cells: list[Cell], cell_splits: list[Splits], deadline: float | None
    ) -> list[Phase]:
        """Tagger's unsupervised phases for the cells' (dataset, seed, pixel order), trained as
        one population (tagmodels.training.grouping.train_taggers); a phase done before is
        reloaded. Each phase is under its lock, taken in name order so that two processes
        never wait on each other: one that needs a phase another trains waits, then reloads
        it. Each cell gets its trained Tagger and the phase's summary, the divergence that
        stopped the phase, or None where ``deadline`` stopped it (it resumes)."""
        runs = [unsupervised_run(self.out, cell) for cell in cells]
        with ExitStack() as held:
            for run in sorted(runs, key=lambda run: run.path.name):
                held.enter_context(exclusive(self.out / STATE / f"{run.path.parent.name}_{run.path.name}.lock"))
                held.callback(run.release)  # its run-directory lock (tagdata.locking): the next process may reload it
            configs = [self._phase_config(run, cell, splits) for run, cell, splits in zip(runs, cells, cell_splits)]
            trained = train_taggers(
                runs, configs, self.device, resume=True, progress=self.progress,
                splits=[(splits.train, splits.valid) for splits in cell_splits],
                adapt_threads=self.adapt_threads, deadline=deadline,
            )
        phases: list[Phase] = []
        for run, (tagger, done) in zip(runs, trained):
            if done.diverged is not None or done.cut:
                phases.append(done.diverged)
                continue
            phases.append((tagger, {
                "run": portable_path(run.path),
                "epochs": len(done.history),
                "train_seconds": training_seconds(done.history),
                "final_valid_ami": done.history[-1]["valid_ami"] if done.history else None,
                "ami_average_method": PAPER_AMI_AVERAGE,
            }))
        return phases

    def _phase_config(self, run: RunDir, cell: Cell, splits: Splits) -> dict[str, Any]:
        """config.json of a cell's unsupervised phase: created, or checked against this scale's."""
        phase = {**self.scale.tagger_unsupervised(), "permute_pixels": cell.permuted}
        if run.config_path.exists():
            config = run.config()
            if config.get("benchmark") != phase:
                raise UserError(f"{run.path} was trained with other settings; delete it to train it again")
            return config
        config = new_run_config(
            phase["preset"], str(splits.path), cell.seed, self.device, self.precision, self.compile,
            **phase["overrides"],
        )
        config["benchmark"] = phase
        run.create(config)
        return config
