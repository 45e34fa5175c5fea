"""Populations (issue 16, part 1): P runs trained as one batched computation equal P separate
runs, member by member; a killed population resumes exactly; a diverging member stops alone."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch

from tagmodels.gpu.steps import BATCH, CASES, EXAMPLES, StepCase
from tagmodels.training.loop import Member, Schedule, fit, fit_population
from tagmodels.training.step import Objective
from tagmodels.training.runs import RunDir

CPU = torch.device("cpu")
SEEDS = (3, 4, 5)
# The objectives of every model kind: BatchNorm with running statistics (FC MLP, ConvNet, FC
# Ladder), the Tagger's batch and layer statistics, binary and continuous, and the Tagger classifier.
KINDS = ("tagger-binary-batch", "tagger-continuous-layer", "fc-mlp-1000-labels", "fc-ladder-all-labels",
         "convnet-all-labels", "tagger-1000-labels")


def case(name: str) -> StepCase:
    return next(case for case in CASES if case.name == name)


def member(case: StepCase, seed: int, folder: Path, epochs: int, lr: float = 1e-3) -> Member:
    """A member as a caller builds one: its model initialised under its seed, its own run."""
    torch.manual_seed(seed)
    objective = in_float64(case.build(CPU))
    folder.mkdir(parents=True, exist_ok=True)
    run = RunDir(folder / f"seed-{seed}")
    if not run.config_path.exists():
        run.create({"seed": seed})
    return Member(objective, Schedule(epochs, lr, BATCH, seed), run)


def in_float64(objective: Objective) -> Objective:
    """The objective in float64. In float32 the batched and the single computation round
    differently, and Adam's first step, lr * sign(g), turns that rounding on gradients that
    are zero in exact arithmetic into whole steps; float64 rounding stays far below Adam's eps."""
    objective.model.double()
    objective.x = objective.x.double()
    objective.valid.images = objective.valid.images.double()
    if hasattr(objective, "targets"):
        objective.targets = objective.targets.double()
    return objective


def n_train(member: Member) -> int:
    return getattr(member.objective, "n_train", EXAMPLES)


def state(member: Member) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in member.objective.model.state_dict().items()}


def assert_same_run(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """The same trajectory to rounding. Adam's step lr * m / (sqrt(v) + eps) turns rounding on a
    gradient near eps into a difference of up to lr on that entry, so a few entries may differ by
    that much; a member given another's noise, data order or statistics moves nearly every entry."""
    assert got.keys() == expected.keys()
    differences = torch.cat([(got[key].double() - expected[key].double()).abs().flatten() for key in expected])
    assert differences.max() < 4 * 2e-3, differences.max()  # a few steps of the largest lr
    assert (differences < 1e-6).double().mean() > 0.99, sorted(differences.tolist())[-20:]


@pytest.mark.parametrize("name", KINDS)
def test_a_population_of_three_equals_three_separate_runs(name, tmp_path):
    population = [member(case(name), seed, tmp_path / "population", epochs=2, lr=lr)
                  for seed, lr in zip(SEEDS, (1e-3, 2e-3, 1e-3))]  # a learning rate of its own, too
    trained = fit_population(population, n_train(population[0]), progress=False, batched=True)
    for one, outcome, lr in zip(population, trained, (1e-3, 2e-3, 1e-3)):
        alone = member(case(name), one.schedule.seed, tmp_path / "alone", epochs=2, lr=lr)
        history = fit(alone.objective, n_train(alone), alone.schedule, alone.run, progress=False)
        assert outcome.diverged is None and len(outcome.history) == len(history) == 2
        expected, got = state(alone), state(one)
        assert_same_run(got, expected)  # parameters and BatchNorm's running statistics alike
        for row, separate in zip(outcome.history, history):
            assert row["cost"] == pytest.approx(separate["cost"], rel=1e-4)
    # The members really differ: their seeds gave them other parameters.
    first, second = state(population[0]), state(population[1])
    assert any(not torch.allclose(first[key].float(), second[key].float()) for key in first)


@pytest.mark.parametrize("name", ["tagger-continuous-batch", "fc-ladder-1000-labels"])
def test_member_by_member_the_cpu_default_equals_separate_runs_bit_for_bit(name, tmp_path):
    population = [member(case(name), seed, tmp_path / "population", epochs=2) for seed in SEEDS]
    fit_population(population, n_train(population[0]), progress=False)  # batched_on(cpu) is False
    for one in population:
        alone = member(case(name), one.schedule.seed, tmp_path / "alone", epochs=2)
        fit(alone.objective, n_train(alone), alone.schedule, alone.run, progress=False)
        expected, got = state(alone), state(one)
        assert all(torch.equal(got[key], expected[key]) for key in expected), (name, one.schedule.seed)


class Killed(Exception):
    """A kill arriving at a chosen moment."""


def killed_run(folder: Path, kind: StepCase, when: Callable[[list[Member]], Any]) -> list[Member]:
    """A population of three killed where ``when`` (given the members) raises Killed."""
    members = [member(kind, seed, folder, epochs=3) for seed in SEEDS]
    with pytest.raises(Killed):
        with when(members):
            fit_population(members, EXAMPLES, progress=False, batched=True)
    return [member(kind, seed, folder, epochs=3) for seed in SEEDS]  # as a new process builds them


def saved_epochs(members: list[Member]) -> list[int]:
    return [len(torch.load(one.run.path / "checkpoint.pt", weights_only=False)["history"]) for one in members]


@contextlib.contextmanager
def in_a_step_of_epoch_two(members: list[Member]) -> Iterator[None]:
    """The third member's third batch (epoch 2, step 1: two steps an epoch) raises."""
    objective, calls = members[2].objective, []
    inputs = objective.inputs

    def killed(batch, generator):
        calls.append(batch)
        if len(calls) == 3:
            raise Killed
        return inputs(batch, generator)

    objective.inputs = killed
    yield


@contextlib.contextmanager
def between_two_saves_of_epoch_two(members: list[Member]) -> Iterator[None]:
    """The second member's checkpoint of epoch 2 is never written; the first one's is."""
    save = RunDir.save_checkpoint

    def killed(self, state, which="last"):
        if self.path == members[1].run.path and which == "last" and len(state["history"]) == 2:
            raise Killed
        return save(self, state, which)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunDir, "save_checkpoint", killed)
        yield


@pytest.mark.parametrize("kill, saved, exact", [
    (in_a_step_of_epoch_two, [1, 1, 1], True),
    (between_two_saves_of_epoch_two, [2, 1, 1], False),
])
def test_a_killed_population_resumes_to_the_uninterrupted_parameters(kill, saved, exact, tmp_path):
    kind = case("tagger-continuous-batch")
    uninterrupted = [member(kind, seed, tmp_path / "whole", epochs=3) for seed in SEEDS]
    fit_population(uninterrupted, EXAMPLES, progress=False, batched=True)
    resumed = killed_run(tmp_path / "killed", kind, kill)
    assert saved_epochs(resumed) == saved
    outcomes = fit_population(resumed, EXAMPLES, resume=True, progress=False, batched=True)
    for one, whole, outcome in zip(resumed, uninterrupted, outcomes):
        assert [row["epoch"] for row in outcome.history] == [1, 2, 3]
        expected, got = state(whole), state(one)
        if exact:  # the same computations in the same order: bit for bit
            assert all(torch.equal(got[key], expected[key]) for key in expected), one.run.path
        else:  # the member behind caught up in a population of two: to rounding
            assert_same_run(got, expected)


def test_a_deadline_stops_every_member_at_a_checkpoint_from_which_it_resumes_exactly(tmp_path):
    kind = case("fc-mlp-1000-labels")
    whole = [member(kind, seed, tmp_path / "whole", epochs=3) for seed in SEEDS]
    fit_population(whole, n_train(whole[0]), progress=False)
    cut = [member(kind, seed, tmp_path / "cut", epochs=3) for seed in SEEDS]
    outcomes = fit_population(cut, n_train(cut[0]), progress=False, deadline=0.0)  # long past: one epoch
    assert [(len(outcome.history), outcome.cut) for outcome in outcomes] == [(1, True)] * 3
    resumed = [member(kind, seed, tmp_path / "cut", epochs=3) for seed in SEEDS]
    outcomes = fit_population(resumed, n_train(resumed[0]), resume=True, progress=False)
    assert [(len(outcome.history), outcome.cut) for outcome in outcomes] == [(3, False)] * 3
    for one, expected in zip(resumed, whole):
        assert all(torch.equal(state(one)[key], state(expected)[key]) for key in state(expected))


def test_a_diverging_member_stops_alone_and_the_others_train_as_if_it_were_not_there(tmp_path):
    kind = case("fc-ladder-all-labels")
    population = [member(kind, seed, tmp_path / "population", epochs=3) for seed in SEEDS]
    bad = population[1].objective
    validate = type(bad).validate

    class Poisoned(type(bad)):  # after its first epoch, its images turn NaN
        def validate(self):
            figures = validate(self)
            self.x.fill_(float("nan"))
            return figures

    bad.__class__ = Poisoned
    outcomes = fit_population(population, EXAMPLES, progress=False, batched=True)
    assert [outcome.diverged is None for outcome in outcomes] == [True, False, True]
    assert "the cost became nan at epoch 2" in str(outcomes[1].diverged)
    assert [len(outcome.history) for outcome in outcomes] == [3, 1, 3]
    kept = torch.load(population[1].run.path / "checkpoint.pt", weights_only=False)
    assert len(kept["history"]) == 1 and all(torch.isfinite(v).all() for v in kept["model"].values())
    for index in (0, 2):
        alone = member(kind, SEEDS[index], tmp_path / "alone", epochs=3)
        fit(alone.objective, EXAMPLES, alone.schedule, alone.run, progress=False)
        expected, got = state(alone), state(population[index])
        assert_same_run(got, expected)


# ----------------------------------------------------------------------------- the command line


def tagtool(*args: object) -> Any:
    from click.testing import CliRunner
    from tagtool_cli.main import tagtool as command

    return CliRunner().invoke(command, [str(arg) for arg in args])


def test_train_seeds_makes_a_run_per_member_that_resumes_together_and_evaluates_alone(shapes_file, tmp_path):
    out = tmp_path / "population"
    common = ("--preset", "shapes-small", "--batch-size", "20", "--quiet")
    result = tagtool("train", "--data", shapes_file, "--out", out, "--epochs", "1", "--seeds", "4-5",
                     "--sweep-lr", "0.001,0.003", *common)
    assert result.exit_code == 0, result.output
    names = ["seed-4-lr-0.001", "seed-4-lr-0.003", "seed-5-lr-0.001", "seed-5-lr-0.003"]
    assert json.loads((out / "population.json").read_text()) == {"members": names}
    configs = [json.loads((out / name / "config.json").read_text())["training"] for name in names]
    assert [(c["seed"], c["lr"]) for c in configs] == [(4, 0.001), (4, 0.003), (5, 0.001), (5, 0.003)]

    result = tagtool("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert [len(RunDir(out / name).history()) for name in names] == [2, 2, 2, 2]
    result = tagtool("train", "--out", out, "--resume", "--epochs", "3")  # each epoch line names its member
    assert result.exit_code == 0 and [name for name in names if f"{name}: epoch 3/3:" in result.output] == names
    result = tagtool("evaluate", out / names[1], "--iterations", "2", "--quiet")
    assert result.exit_code == 0 and "AMI after 2 iterations" in result.output, result.output


@pytest.mark.parametrize("option, value, message", [
    ("--seeds", "3-x", "give seeds as 0-4 or 0,3,7"),
    ("--seeds", "1,1", "give each seed once"),
    ("--sweep-lr", "0.001,-1", "give distinct positive numbers"),
])
def test_a_bad_population_option_is_one_line_naming_it(shapes_file, tmp_path, option, value, message):
    result = tagtool("train", "--data", shapes_file, "--out", tmp_path / "p", option, value)
    assert result.exit_code == 2 and message in result.output and option in result.output, result.output
    assert not (tmp_path / "p").exists()


def test_ablation_with_seeds_trains_each_variant_as_a_population_and_reports_the_spread(shapes_file, tmp_path):
    result = tagtool("ablation", "--data", shapes_file, "--out", tmp_path / "runs", "--epochs", "1", "--iterations", "2",
                     "--seeds", "0-1", "--device", "cpu", "--json", tmp_path / "ablation.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ablation.json").read_text())
    assert report["seeds"] == [0, 1]
    for name in ("full", "no-delta-z", "no-likelihood"):
        variant = report["variants"][name]
        finals = [variant["per_seed"][seed]["ami"][-1] for seed in ("0", "1")]
        assert variant["final_ami"] == {"median": round((finals[0] + finals[1]) / 2, 4),
                                        "min": min(finals), "max": max(finals)}
        seeds = [json.loads((tmp_path / "runs" / name / f"seed-{s}" / "config.json").read_text())["training"]["seed"]
                 for s in (0, 1)]
        assert seeds == [0, 1]


def test_speed_population_writes_both_ways_beside_separate_runs(tmp_path):
    result = tagtool("speed-population", "--preset", "shapes-small", "--members", "2", "--seconds", "0.01",
                     "--device", "cpu", "--threads", "1", "--out", tmp_path / "speed.json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "speed.json").read_text())["settings"]
    assert row["members"] == 2 and row["batched_on_this_device"] is False
    for key in ("population", "member_by_member", "separate"):
        assert row[f"{key}_samples_per_second"] > 0 and len(row["rounds"][key]) == 2


def test_a_population_that_fails_before_its_first_epoch_leaves_no_folder(shapes_file, tmp_path, monkeypatch):
    from tagmodels.training import grouping

    from tagdata.errors import UserError

    def refused(*args, **kwargs):
        raise UserError("refused before the first epoch")

    monkeypatch.setattr(grouping, "fit_population", refused)
    result = tagtool("train", "--data", shapes_file, "--out", tmp_path / "p", "--seeds", "0-1", "--quiet")
    assert result.exit_code == 1 and result.output.strip() == "Error: refused before the first epoch", result.output
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_from_before_per_run_noise_resumes_on_its_old_stream(tmp_path):
    kind = case("tagger-binary-batch")
    whole = member(kind, 3, tmp_path / "whole", epochs=2)
    fit(whole.objective, EXAMPLES, whole.schedule, whole.run, progress=False)
    old = member(kind, 3, tmp_path / "old", epochs=1)
    fit(old.objective, EXAMPLES, old.schedule, old.run, progress=False)
    checkpoint = torch.load(old.run.checkpoint_path, weights_only=False)
    checkpoint["rng"] = {"torch": checkpoint["rng"]["noise"], "order": checkpoint["rng"]["order"]}  # the old layout
    torch.save(checkpoint, old.run.checkpoint_path)
    resumed = member(kind, 3, tmp_path / "old", epochs=2)
    fit(resumed.objective, EXAMPLES, resumed.schedule, resumed.run, resume=True, progress=False)
    expected, got = state(whole), state(resumed)
    assert all(torch.equal(got[key], expected[key]) for key in expected)


@pytest.mark.parametrize("name", ["fc-mlp-all-labels", "fc-ladder-1000-labels"])
def test_a_population_with_running_batch_statistics_trains_as_one_under_bf16(name, tmp_path):
    """bf16 is the default on CPUs with AMX: vmap's BatchNorm must take a bf16 input beside its
    float32 running statistics, which it refused before they were normalised in float32."""
    population = []
    for seed in SEEDS[:2]:
        torch.manual_seed(seed)
        run = RunDir(tmp_path / f"seed-{seed}")
        run.create({"seed": seed})
        population.append(Member(case(name).build(CPU), Schedule(1, 1e-3, BATCH, seed), run))
    trained = fit_population(population, n_train(population[0]), progress=False, precision="bf16", batched=True)
    assert all(outcome.diverged is None and len(outcome.history) == 1 for outcome in trained)
    first, second = (member.objective.model.state_dict() for member in population)
    running = [key for key in first if key.endswith("running_mean")]
    assert running and all(first[key].dtype == torch.float32 for key in running)
    assert any(not torch.equal(first[key], second[key]) for key in running)
