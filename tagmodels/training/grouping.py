"""Unsupervised Tagger runs: build from a preset, train on a dataset, reload for evaluation.

config.json holds everything needed to rebuild the model (the TaggerConfig) and to
continue training (the schedule), so ``--resume``, ``evaluate`` and ``visualize`` need
nothing but the run directory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Sequence

import torch

from tagdata.errors import UserError
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.evaluation import evaluate_grouping, oracle_log_m0
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.tagger.presets import Preset, get_preset
from tagmodels.tagger.tag_names import INITIAL_M
from tagmodels.training.best import Selection
from tagmodels.training.budget import PROBE_SECONDS, epochs_within, step_seconds
from tagmodels.training.data import SplitTensors, data_identity, input_kind, load_split
from tagmodels.training.loop import ADAM_BETAS, Member, Schedule, Trained, fit_population
from tagmodels.training.restore import Run, restore
from tagmodels.training.runs import RunDir, provenance
from tagmodels.training.step import batched_on

VALIDATION_SEED = 1234  # fixed initial m and corruption for the per-epoch validation
BEST = Selection("valid_ami")  # best.pt: the epoch whose validation AMI is highest
# config.json fields a Tagger run cannot do without, and the types they must have.
RUN_FIELDS = {"model": str, "data": str, "tagger": dict, "training": dict}
TRAINING_FIELDS = {
    "epochs": int, "lr": (int, float), "batch_size": int, "groups": int, "iterations": int,
    "eval_iterations": int, "valid_examples": int, "seed": int, "precision": str, "compile": bool,
}


class GroupingObjective:
    """Tagger's denoising cost on corrupted training batches; AMI on clean validation data.

    ``oracle``: every iteration 1 starts from the true grouping (``oracle_log_m0``) in training
    and validation, not from the paper's random m^0. A diagnostic (``--initial-m oracle``): can
    the network learn to explain each object in this budget once it is told which pixels are
    whose? It is then scored with ``tagtool evaluate --initial-m oracle`` (docs/textures.md).
    """

    def __init__(
        self, model: Tagger, train: SplitTensors, valid: SplitTensors, groups: int, iterations: int, batch_size: int,
        oracle: bool = False,
    ) -> None:
        self.model = model
        self.x = train.x
        self.segmentation = train.segmentation
        self.valid = valid
        self.groups = groups
        self.iterations = iterations
        self.batch_size = batch_size
        self.oracle = oracle

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        rows = batch.to(self.x.device)
        if self.oracle:
            return self.x[rows], oracle_log_m0(self.segmentation[rows], self.groups)
        return (self.x[rows],)

    def cost(self, model: torch.nn.Module, x: torch.Tensor, log_m0: torch.Tensor | None = None) -> torch.Tensor:
        return model.training_cost(model(x, self.groups, self.iterations, corrupt=True, log_m0=log_m0))

    def validate(self) -> dict[str, Any]:
        return grouping_metrics(self.model, self.valid, self.groups, self.iterations, self.batch_size, self.oracle)


def grouping_metrics(
    model: Tagger, valid: SplitTensors, groups: int, iterations: int, batch_size: int, oracle: bool = False,
) -> dict[str, Any]:
    """The per-epoch grouping figures of a Tagger, from the same validation images, initial m
    and corruption every epoch (VALIDATION_SEED): unsupervised runs and the supervised phase
    record the same fields."""
    rows = evaluate_grouping(
        model, valid.x, valid.segmentation, groups, iterations, batch_size, VALIDATION_SEED,
        oracle=oracle, layer_rms=True,
    )
    last = rows[-1]
    # Per true layer, how well z explains it (LayerErrors): the AMI reads m only, and a
    # run can split the image by position while no group has learned an object's
    # texture (docs/textures.md); these curves show which, epoch by epoch.
    return {
        "valid_cost": last["denoising_cost"],
        "valid_ami": last["ami"],
        "valid_ami_iterations": [row["ami"] for row in rows],
        "ami_average_method": PAPER_AMI_AVERAGE,
        "valid_layer_rms_owner": last["layer_rms"]["owner"],
        "valid_layer_rms_best_group": last["layer_rms"]["best_group"],
    }


def tagger_config(preset: Preset, n_inputs: int, kind: str) -> TaggerConfig:
    """The model a preset describes, for data of ``n_inputs`` elements of ``kind``."""
    return TaggerConfig(
        n_inputs=n_inputs,
        input_kind=kind,  # type: ignore[arg-type]
        widths=tuple(preset.widths),
        norm=preset.norm,  # type: ignore[arg-type]
        noise=preset.noise,
        data_mean=preset.data_mean,
        gate_sigmoid=preset.gate_sigmoid,
        initial_variance=preset.initial_variance,
        delta_z_form=preset.delta_z_form,  # type: ignore[arg-type]
        z_input=preset.z_input,  # type: ignore[arg-type]
        variance_map=preset.variance_map,  # type: ignore[arg-type]
        likelihood_variance=preset.likelihood_variance,  # type: ignore[arg-type]
        m_floor=preset.m_floor,
        norm_epsilon=preset.norm_epsilon,
        tag_norm=preset.tag_norm,  # type: ignore[arg-type]
        z_norm=preset.z_norm,  # type: ignore[arg-type]
        m0_scale=preset.m0_scale,
        m0_smoothing=preset.m0_smoothing,
        z_rank=preset.z_rank,
    )


def new_run_config(
    preset_name: str, data_path: str, seed: int, device: torch.device, precision: str = "fp32",
    compile: bool = False, **overrides: Any,
) -> dict[str, Any]:
    """config.json for a fresh run: the preset with overrides, sized to the data, and how it
    runs (precision, compilation; kept on resume)."""
    preset = get_preset(preset_name).with_overrides(**overrides)
    _check_positive(preset)
    train = load_split(data_path, "train", limit=1)
    load_split(data_path, "valid", limit=1)  # scored after every epoch: refuse a file without it now
    if train.kind != preset.dataset_kind:
        raise UserError(
            f"preset {preset_name!r} is for {preset.dataset_kind} data but {data_path} holds {train.kind} data"
        )
    model = tagger_config(preset, train.x.shape[1], input_kind(train.kind))
    return {
        "model": "tagger",
        "preset": preset_name,
        "data": str(Path(data_path).resolve()),
        "data_identity": data_identity(data_path),
        "tagger": model.to_dict(),
        "training": {**asdict(preset), "seed": seed, "precision": precision, "compile": compile},
        "provenance": provenance(device, seed),
    }


def _check_positive(preset: Preset) -> None:
    for name in ("epochs", "batch_size", "groups", "iterations", "eval_iterations"):
        if getattr(preset, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(preset, name)}")
    for name in ("lr", "initial_variance", "norm_epsilon", "m0_scale"):
        value = getattr(preset, name)
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if preset.lr_decay_from is not None and not 0 <= preset.lr_decay_from < preset.epochs:
        raise UserError(f"the lr decay must start within the {preset.epochs} epochs, got epoch {preset.lr_decay_from}")
    if len(preset.adam_betas) != 2 or not all(0 <= beta < 1 for beta in preset.adam_betas):
        raise UserError(f"adam_betas must be two numbers in [0, 1), got {list(preset.adam_betas)}")
    if preset.initial_m not in INITIAL_M:
        raise UserError(f"--initial-m must be one of {', '.join(INITIAL_M)}, got {preset.initial_m!r}")
    if preset.z_rank is not None and preset.z_rank < 1:
        raise UserError(f"--z-rank must be at least 1, got {preset.z_rank}")
    if not (math.isfinite(preset.m_floor) and preset.m_floor >= 0):
        raise UserError(f"--m-floor must be a non-negative number, got {preset.m_floor}")
    if not (math.isfinite(preset.m0_smoothing) and preset.m0_smoothing >= 0):
        raise UserError(f"--m0-smoothing must be a non-negative number, got {preset.m0_smoothing}")


def check_run_config(config: Any, source: Path) -> None:
    """Refuse a Tagger run's config.json that lacks a field or holds one of the wrong type,
    naming the field, before anything indexes it."""

    def check(table: Any, expected: dict[str, Any], prefix: str) -> None:
        if not isinstance(table, dict):
            raise UserError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a JSON object")
        for name, kind in expected.items():
            if name not in table:
                raise UserError(f"{source}: missing field '{prefix}{name}'")
            if not isinstance(table[name], kind) or (isinstance(table[name], bool) and kind is not bool):
                raise UserError(f"{source}: field '{prefix}{name}' has the wrong type ({type(table[name]).__name__})")

    check(config, RUN_FIELDS, "")
    check(config["training"], TRAINING_FIELDS, "training.")
    check(config["tagger"], {"n_inputs": int, "widths": list}, "tagger.")
    unknown = set(config["tagger"]) - {field.name for field in fields(TaggerConfig)}
    if unknown:
        raise UserError(f"{source}: unknown field(s) {', '.join(sorted(f'tagger.{n}' for n in unknown))}")


def population_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What the members of one population must share: everything but the seed and the learning rate."""
    training = {key: value for key, value in config["training"].items() if key not in ("seed", "lr")}
    return {"data": config["data"], "tagger": config["tagger"], "training": training}


def grouping_objectives(
    configs: list[dict[str, Any]], device: torch.device,
    splits: Sequence[tuple[SplitTensors, SplitTensors]] | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
) -> list[GroupingObjective]:
    """The objectives of the runs ``configs`` describe as one population (their seeds and
    learning rates may differ, nothing else), each model at its seed's initial parameters,
    or at ``initial_state`` when given (:func:`initial_parameters`).

    The data are read once from the configs' file unless ``splits`` gives each run's (train,
    valid) already loaded (the benchmark passes pixel-permuted ones, a permutation per seed).
    """
    shared = population_settings(configs[0])
    if any(population_settings(config) != shared for config in configs[1:]):
        raise ValueError("the runs of one population may differ only in their seed and learning rate")
    training = configs[0]["training"]
    if splits is None:
        loaded = (load_split(shared["data"], "train", device),
                  load_split(shared["data"], "valid", device, limit=training["valid_examples"]))
        splits = [loaded] * len(configs)
    if len(splits) != len(configs):
        raise ValueError("one (train, valid) pair per run")
    objectives = []
    for config, (train, valid) in zip(configs, splits):
        torch.manual_seed(config["training"]["seed"])  # the initial parameters
        model = Tagger(TaggerConfig.from_dict(config["tagger"])).to(device)
        if initial_state is not None:
            model.load_state_dict(initial_state)
        train.check_inputs(model.config.n_inputs, shared["data"], model.config.input_kind)
        objectives.append(GroupingObjective(
            model, train, valid.head(training["valid_examples"]), training["groups"], training["iterations"],
            training["batch_size"], oracle=training.get("initial_m", "random") == "oracle",  # absent in older runs
        ))
    return objectives


def initial_parameters(source: RunDir, tagger: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The last checkpoint's parameters of the Tagger run ``source`` (``train --init-from``),
    checked to fit a Tagger built from ``tagger`` (a config.json's "tagger" table), and the
    record config.json keeps of them. Why: a warm start, e.g. training from the random m^0
    after a run that learned from the true grouping (docs/textures.md)."""
    state = load_tagger(source, torch.device("cpu"))
    parameters = state.model.state_dict()
    try:
        Tagger(TaggerConfig.from_dict(tagger)).load_state_dict(parameters)
    except RuntimeError as err:  # missing, unexpected or differently shaped parameters
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise UserError(f"the parameters of {source.path} do not fit this run's model (its widths, norm or "
                        f"read-outs differ): {lines[-1][:160]}") from None
    return parameters, {"run": str(source.path.resolve()), "epoch": len(state.history)}


def budget_epochs(configs: list[dict[str, Any]], device: torch.device, minutes: float) -> tuple[int, float]:
    """The whole epochs of the population ``configs`` describe that fit ``minutes`` of training
    on this device now, and the training samples per second (all members) they were
    measured at (:mod:`tagmodels.training.budget`)."""
    objectives = grouping_objectives(configs, device)  # timed, then dropped: training rebuilds them
    training = configs[0]["training"]
    examples, batch_size = len(objectives[0].x), training["batch_size"]
    rows = min(batch_size, examples)
    seconds = step_seconds(objectives, device, training["precision"], PROBE_SECONDS, batched_on(device), rows)
    epochs = epochs_within(60 * minutes, seconds, examples, batch_size, len(objectives[0].valid.x))
    return epochs, len(objectives) * rows / seconds


def train_taggers(
    runs: list[RunDir],
    configs: list[dict[str, Any]],
    device: torch.device,
    resume: bool,
    progress: bool,
    splits: Sequence[tuple[SplitTensors, SplitTensors]] | None = None,
    adapt_threads: bool = False,
    deadline: float | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
) -> list[tuple[Tagger, Trained]]:
    """Train (or continue) the runs ``configs`` describe as one population (their seeds and
    learning rates may differ, nothing else); returns each member's model and outcome.

    ``splits`` and ``initial_state`` (new runs only): as :func:`grouping_objectives`;
    ``deadline``: as :func:`tagmodels.training.loop.fit_population`.
    """
    objectives = grouping_objectives(configs, device, splits, initial_state)
    members = [Member(objective, _schedule(config), run) for run, config, objective in zip(runs, configs, objectives)]
    training = configs[0]["training"]
    trained = fit_population(
        members, len(objectives[0].x), resume=resume, progress=progress, precision=training["precision"],
        compile=training["compile"], keep_best=BEST, adapt_threads=adapt_threads, deadline=deadline,
    )
    return [(member.objective.model, outcome) for member, outcome in zip(members, trained)]


def _schedule(config: dict[str, Any]) -> Schedule:
    training = config["training"]
    return Schedule(training["epochs"], training["lr"], training["batch_size"], training["seed"],
                    training.get("lr_decay_from"), tuple(training.get("adam_betas", ADAM_BETAS)))  # absent in older runs


def rebuild_tagger(run: RunDir, config: Any) -> Tagger:
    """The untrained Tagger a run's config.json describes (checked field by field first)."""
    check_run_config(config, run.config_path)
    return Tagger(TaggerConfig.from_dict(config["tagger"]))


def load_tagger(run: RunDir, device: torch.device, checkpoint: str = "last") -> Run:
    """A Tagger run loaded from its last or best checkpoint: the model (eval mode), the run's
    config and the checkpoint's own history."""
    config = run.config()
    if not (isinstance(config, dict) and config.get("model") == "tagger"):
        model = config.get("model") if isinstance(config, dict) else None
        raise UserError(f"{run.path} is not a Tagger run (model: {model!r})")
    return restore(run, config, rebuild_tagger(run, config), device, checkpoint)
