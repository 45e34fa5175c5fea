"""The grid beyond one process: the local pool, the Slurm array (through submitit where it is
installed), cell locks shared by several commands, a killed worker, and `tagtool status`."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool
from test_benchmark import bench_dir, data_dir, decaying_scale, tiny_scale  # noqa: F401 (data_dir: a fixture)

from tagdata.errors import UserError
from tagmodels.benchmark.executors import (
    attempt_seeds,
    cell_lock,
    dispatchable,
    planned_benchmark,
    populations,
    run_inline,
    run_local,
    worker_slots,
)
from tagmodels.benchmark import grid as grid_module
from tagmodels.training import grouping as grouping_module
from tagmodels.benchmark.grid import Cell
from tagmodels.benchmark.locks import claim
from tagmodels.benchmark.plan import Plan, extend_plan, read_plan
from tagmodels.benchmark.settings import Scale
from tagmodels.benchmark.slurm import PopulationTask, parse_minutes, parse_sbatch_options, slurm_parameters, submit_array
from tagmodels.benchmark.status import render_status, status_rows

CELLS = [
    Cell("fc-mlp", "texture-mnist1", "50000", 0),
    Cell("convnet", "texture-mnist1", "50000", 0),
    Cell("tagger", "texture-mnist2", "50000", 0),
    Cell("fc-ladder", "texture-mnist2", "50000", 0, permuted=True),
]


def planned(tmp: Path, data: Path, cells: list[Cell], scale: Scale | None = None) -> Path:
    """A benchmark directory with its datasets and a plan of ``cells``."""
    out = bench_dir(tmp, data)
    extend_plan(out, Plan(scale or tiny_scale(), cells, "fp32", False))
    return out


def inline(out: Path, cells: list[Cell]) -> list:
    _, bench = planned_benchmark(out, "inline", "cpu", 1, log=lambda line: None)
    return run_inline(bench, cells, log=lambda line: None)


def result(out: Path, cell: Cell) -> dict:
    return json.loads((out / "runs" / cell.name / "result.json").read_text())


FIGURES = ("test_error", "final_valid_error", "epochs", "train_examples", "labelled_examples", "threads", "seed")


def test_local_pool_gives_the_inline_figures(tmp_path, data_dir):
    alone = planned(tmp_path / "inline", data_dir, CELLS)
    pool = planned(tmp_path / "local", data_dir, CELLS)
    inline(alone, CELLS)
    lines = []
    outcomes = run_local(pool, CELLS, max_parallel=2, device="cpu", threads=1, log=lines.append)
    assert [o.state for o in outcomes] == ["ran"] * 4
    for cell in CELLS:
        a, b = result(alone, cell), result(pool, cell)
        assert {k: a[k] for k in FIGURES} == {k: b[k] for k in FIGURES}, cell.name
        assert (a["executor"], b["executor"], b["job_id"]) == ("inline", "local", None)
        assert b["samples_per_second"] > 0 and b["peak_memory_mib"] > 0
    phase = result(pool, CELLS[2])["unsupervised_phase"]
    assert phase["final_valid_ami"] == result(alone, CELLS[2])["unsupervised_phase"]["final_valid_ami"]
    assert sum("worker" in line for line in lines) == 2
    # Each cell gives its run directories' own locks up (tagdata.locking) as it ends, so that the
    # other budget's cell in another worker can reload the shared unsupervised phase.
    assert [path for d in (alone, pool) for path in d.glob("*/*/.lock")] == []
    assert "(n=1)" in (pool / "table.md").read_text()


def test_worker_slots_divide_the_cores_and_pin_each_worker():
    slots = worker_slots(2, "cpu", "auto")
    cores = len(slots[0].cores or ()) or 1
    assert [s.worker for s in slots] == [0, 1] and all(s.device == "cpu" and s.threads == cores for s in slots)
    if slots[0].cores is not None:
        assert not set(slots[0].cores) & set(slots[1].cores)
    assert {s.threads for s in worker_slots(2, "cpu", 3)} == {3}


def test_second_label_budget_of_a_tagger_phase_waits_for_the_first():
    first, second = [Cell("tagger", "texture-mnist1", "50000", 0)], [Cell("tagger", "texture-mnist1", "1000", 0)]
    other = [Cell("fc-mlp", "texture-mnist1", "1000", 0)]
    assert dispatchable([second, other], [first], free=2) == [other]
    assert dispatchable([first, second, other], [], free=3) == [first, other]
    assert dispatchable([first, other], [], free=1) == [first]
    assert dispatchable([second], [[Cell("tagger", "texture-mnist1", "50000", 1)]], free=1) == [second]
    seeds = [Cell("tagger", "texture-mnist1", "1000", seed) for seed in range(3)]
    assert dispatchable([seeds], [[Cell("tagger", "texture-mnist1", "50000", 2)]], free=1) == []  # seed 2's phase is busy


def test_tasks_hold_the_seeds_of_one_cell_up_to_the_limit():
    cells = [Cell(method, "texture-mnist1", "50000", seed) for seed in range(3) for method in ("fc-mlp", "convnet")]
    names = lambda groups: [[cell.name.split("_")[0] + str(cell.seed) for cell in group] for group in groups]
    assert names(populations(cells)) == [["fc-mlp0", "fc-mlp1", "fc-mlp2"], ["convnet0", "convnet1", "convnet2"]]
    assert names(populations(cells, 2)) == [["fc-mlp0", "fc-mlp1"], ["fc-mlp2"], ["convnet0", "convnet1"], ["convnet2"]]


def test_a_pool_task_trains_the_seeds_of_a_cell_as_one_population(tmp_path, data_dir):
    seeds = [Cell("fc-mlp", "texture-mnist1", "50000", seed) for seed in range(2)]
    alone, pool = planned(tmp_path / "inline", data_dir, seeds), planned(tmp_path / "local", data_dir, seeds)
    for cell in seeds:
        inline(alone, [cell])
    outcomes = run_local(pool, seeds, max_parallel=2, device="cpu", threads=1, log=lambda line: None)
    assert [outcome.state for outcome in outcomes] == ["ran"] * 2
    for cell in seeds:
        a, b = result(alone, cell), result(pool, cell)
        assert {k: a[k] for k in FIGURES} == {k: b[k] for k in FIGURES}, cell.name
        assert (a["population"], b["population"]) == (1, 2)


_KILL_IN_EPOCH_TWO = textwrap.dedent("""
    import os, signal, sys
    from tagmodels.benchmark.executors import run_planned_cells
    from tagmodels.training.classification import ClassificationObjective

    real, calls = ClassificationObjective.validate, []
    def validate(self):
        calls.append(1)
        if len(calls) == 2:  # after epoch 1's checkpoint, before epoch 2's
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self)
    ClassificationObjective.validate = validate
    run_planned_cells(sys.argv[1], [int(sys.argv[2])], "local", "cpu", 1)
""")


def test_a_killed_worker_resumes_its_cell_exactly_and_leaves_finished_cells_alone(tmp_path, data_dir):
    done, killed = Cell("fc-mlp", "texture-mnist1", "50000", 0), Cell("fc-ladder", "texture-mnist2", "50000", 0)
    straight = planned(tmp_path / "straight", data_dir, [done, killed], decaying_scale())
    inline(straight, [killed])

    out = planned(tmp_path / "out", data_dir, [done, killed], decaying_scale())
    inline(out, [done])
    stamp = (out / "runs" / done.name / "result.json").stat().st_mtime_ns
    script = tmp_path / "kill.py"
    script.write_text(_KILL_IN_EPOCH_TWO)
    worker = subprocess.run([sys.executable, str(script), str(out), "1"], capture_output=True, text=True)
    assert worker.returncode == -9, worker.stderr
    assert not (out / "runs" / killed.name / "result.json").exists()
    row = {r.name: r for r in status_rows(out)}[killed.name]
    assert (row.state, row.done, row.planned, row.detail) == ("waiting", 1, 3, "resumes after epoch 1")

    outcomes = run_local(out, [done, killed], max_parallel=1, device="cpu", threads=1, log=lambda line: None)
    assert [o.state for o in outcomes] == ["skipped", "ran"]
    assert (out / "runs" / done.name / "result.json").stat().st_mtime_ns == stamp
    assert result(out, killed)["resumed_at_epoch"] == 1
    assert result(out, killed)["test_error"] == result(straight, killed)["test_error"]
    a = torch.load(straight / "runs" / killed.name / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(out / "runs" / killed.name / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def _command(out: str, cells: list[Cell], start, results) -> None:
    """One `tagtool benchmark` command's work, in a process of its own."""
    torch.set_num_threads(1)
    start.wait()
    results.put([(o.cell.name, o.state) for o in inline(Path(out), cells)])


def test_two_commands_at_once_never_run_a_cell_twice(tmp_path, data_dir):
    cells = [Cell("fc-mlp", "texture-mnist1", "50000", seed) for seed in range(4)]
    out = planned(tmp_path, data_dir, cells)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    commands = [context.Process(target=_command, args=(str(out), order, start, results)) for order in (cells, cells[::-1])]
    for command in commands:
        command.start()
    states = [dict(results.get(timeout=300)) for _ in commands]
    for command in commands:
        command.join()
    for cell in cells:
        pair = sorted(s[cell.name] for s in states)
        assert pair in (["elsewhere", "ran"], ["ran", "skipped"]), (cell.name, pair)
        assert len(result(out, cell)["command"]) > 0


@pytest.mark.parametrize("method", ["fc-ladder", "tagger"])
def test_the_seeds_of_a_cell_train_as_one_population_that_gives_each_cells_own_figures(tmp_path, data_dir, monkeypatch, method):
    seeds = [Cell(method, "texture-mnist1", "50000", seed) for seed in range(3)]
    together, alone = planned(tmp_path / "together", data_dir, seeds), planned(tmp_path / "alone", data_dir, seeds)
    sizes: dict[str, list[int]] = {"GroupingObjective": [], "ClassificationObjective": []}
    for module in (grid_module, grouping_module):  # the Tagger's unsupervised phases train through the second
        real = module.fit_population
        monkeypatch.setattr(module, "fit_population", lambda members, *a, real=real, **k: sizes[
            type(members[0].objective).__name__].append(len(members)) or real(members, *a, **k))
    assert [outcome.state for outcome in inline(together, seeds)] == ["ran"] * 3
    for cell in seeds:
        inline(alone, [cell])
    assert sizes == {"GroupingObjective": [3, 1, 1, 1] if method == "tagger" else [], "ClassificationObjective": [3, 1, 1, 1]}
    for cell in seeds:
        a, b = result(together, cell), result(alone, cell)
        assert {k: a[k] for k in FIGURES} == {k: b[k] for k in FIGURES}, cell.name
        assert (a["population"], b["population"]) == (3, 1)
        if method == "tagger":
            assert a["unsupervised_phase"]["final_valid_ami"] == b["unsupervised_phase"]["final_valid_ami"]
    assert len({result(together, cell)["test_error"] for cell in seeds} | {-1.0}) > 2  # the seeds differ


def test_a_deadline_leaves_the_seeds_unfinished_and_the_next_command_finishes_them(tmp_path, data_dir):
    seeds = [Cell("fc-mlp", "texture-mnist1", "50000", seed) for seed in range(2)]
    out = planned(tmp_path, data_dir, seeds, tiny_scale(epochs=2))
    _, bench = planned_benchmark(out, "inline", "cpu", 1, log=lambda line: None)
    outcomes = attempt_seeds(bench, seeds, deadline=0.0)
    assert [outcome.state for outcome in outcomes] == ["unfinished"] * 2 and "resumes" in outcomes[0].line()
    assert not list(out.glob("runs/*/result.json"))
    assert [len((out / "runs" / cell.name / "metrics.jsonl").read_text().splitlines()) for cell in seeds] == [1, 1]
    assert [outcome.state for outcome in attempt_seeds(bench, seeds)] == ["ran"] * 2
    assert [result(out, cell)["resumed_at_epoch"] for cell in seeds] == [1, 1]


def test_a_deadline_in_the_tagger_phase_leaves_the_cells_unfinished_and_keeps_the_phases(tmp_path, data_dir):
    seeds = [Cell("tagger", "texture-mnist1", "50000", seed) for seed in range(2)]
    out = planned(tmp_path, data_dir, seeds)
    _, bench = planned_benchmark(out, "inline", "cpu", 1, log=lambda line: None)
    assert [outcome.state for outcome in attempt_seeds(bench, seeds, deadline=0.0)] == ["unfinished"] * 2
    assert not list(out.glob("runs/*/result.json"))
    assert [outcome.state for outcome in attempt_seeds(bench, seeds)] == ["ran"] * 2
    for cell in seeds:  # each phase trained once, by the first command, and reloaded by the second
        phase = Path(result(out, cell)["unsupervised_phase"]["run"])  # relative to the working directory
        assert len((phase / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("method, diverging_phase", [("fc-mlp", grid_module), ("tagger", grouping_module)],
                         ids=["classifier", "tagger-unsupervised-phase"])
def test_a_diverging_seed_is_recorded_while_the_others_finish(tmp_path, data_dir, monkeypatch, method, diverging_phase):
    seeds = [Cell(method, "texture-mnist1", "50000", seed) for seed in range(3)]
    out = planned(tmp_path, data_dir, seeds)
    real = diverging_phase.Schedule
    monkeypatch.setattr(diverging_phase, "Schedule", lambda epochs, lr, batch, seed, *rest: real(
        epochs, float("inf") if seed == 1 else lr, batch, seed, *rest))
    with pytest.raises(UserError, match="not finite|NaN|diverged"):
        inline(out, seeds)
    rows = {row.name: row for row in status_rows(out)}
    assert [rows[cell.name].state for cell in seeds] == ["done", "failed", "done"]
    assert not (out / "runs" / seeds[1].name / "result.json").exists()


def test_a_cell_held_by_another_process_is_passed_over_and_shown_running(tmp_path, data_dir):
    cell = CELLS[0]
    out = planned(tmp_path, data_dir, [cell])
    _, bench = planned_benchmark(out, "inline", "cpu", 1, log=lambda line: None)
    where = {"executor": "slurm", "job_id": "77_3", "host": "node7", "pid": 42, "device": "cuda:0", "worker": None}
    with claim(cell_lock(out, cell), where) as mine:
        assert mine
        (outcome,) = attempt_seeds(bench, [cell])
        row = status_rows(out)[0]
    assert outcome.state == "elsewhere" and "node7" in outcome.detail
    assert not (out / "runs" / cell.name).exists()
    assert row.state == "running" and row.detail == "slurm on node7 (job 77_3, pid 42, cuda:0)"
    assert attempt_seeds(bench, [cell])[0].state == "ran"  # the lock died with its holder's block


def test_a_failed_cell_shows_its_last_error_line_until_it_succeeds(tmp_path, data_dir, monkeypatch):
    cell = CELLS[0]
    out = planned(tmp_path, data_dir, [cell])
    _, bench = planned_benchmark(out, "inline", "cpu", 1, log=lambda line: None)
    monkeypatch.setattr(bench, "run_seeds", lambda cells, deadline=None: (_ for _ in ()).throw(RuntimeError("CUDA out of memory\nTried 2 GiB")))
    with pytest.raises(RuntimeError):
        attempt_seeds(bench, [cell])
    row = status_rows(out)[0]
    assert (row.state, row.detail) == ("failed", "RuntimeError: Tried 2 GiB")
    monkeypatch.undo()
    assert attempt_seeds(bench, [cell])[0].state == "ran"
    assert status_rows(out)[0].state == "done" and not list((out / "state").glob("*.error"))


# ---------------------------------------------------------------------------- plan


def test_plans_of_several_commands_keep_their_indices(tmp_path):
    scale = tiny_scale()
    extend_plan(tmp_path / "b", Plan(scale, CELLS[:2], "auto", False))
    merged = extend_plan(tmp_path / "b", Plan(scale, [CELLS[3], CELLS[0]], "fp32", False))
    assert merged.cells == [CELLS[0], CELLS[1], CELLS[3]]
    assert read_plan(tmp_path / "b") == merged and merged.scale == scale
    assert extend_plan(tmp_path / "b", Plan(decaying_scale(), CELLS[:1], "fp32", False)).scale == decaying_scale()
    with pytest.raises(UserError, match="quick-scale benchmark"):
        extend_plan(tmp_path / "b", Plan(tiny_scale(name="cpu"), CELLS, "fp32", False))
    with pytest.raises(UserError, match="out of range"):
        merged.cell(3)


# ---------------------------------------------------------------------------- Slurm


def test_sbatch_parameters_from_the_options():
    parameters = slurm_parameters("gpu", "1-02:30", 1, 8, 4, parse_sbatch_options(["account=proj", "--exclusive"]))
    assert parameters == {
        "job_name": "tagtool-benchmark", "time": 26 * 60 + 30, "array_parallelism": 4, "partition": "gpu",
        "gpus_per_task": 1, "cpus_per_task": 8,
        "additional_parameters": {"requeue": True, "account": "proj", "exclusive": True},
    }
    assert "partition" not in slurm_parameters(None, "90", None, None, 2)
    assert [parse_minutes(t) for t in ("90", "4:00:00", "1:30", "2-0")] == [90, 240, 2, 2880]
    for bad in ("soon", "0"):
        with pytest.raises(UserError, match="--slurm-time"):
            parse_minutes(bad)
    with pytest.raises(UserError, match="--slurm-option"):
        parse_sbatch_options(["=x"])


def test_the_sbatch_script_submitit_would_submit(tmp_path):
    pytest.importorskip("submitit")
    from submitit.slurm.slurm import _make_sbatch_string

    parameters = slurm_parameters("gpu", "90", 1, None, 2, parse_sbatch_options(["qos=high"]))
    script = _make_sbatch_string(command="run", folder=tmp_path, map_count=5, **parameters)
    for line in ("--array=0-4%2", "--partition=gpu", "--gpus-per-task=1", "--time=90", "--requeue",
                 "--qos=high", "--signal=USR2@90", "--job-name=tagtool-benchmark"):
        assert f"#SBATCH {line}\n" in script, line


def test_slurm_array_through_submitits_debug_executor(tmp_path, data_dir):
    submitit = pytest.importorskip("submitit")
    cells = CELLS[:2]
    out = planned(tmp_path, data_dir, cells)
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="debug")
    jobs = submit_array(executor, out, [[0], [1]], device="cpu", log=lambda line: None)
    assert [[outcome.state for outcome in job.result()] for job in jobs] == [["ran"], ["ran"]]
    assert {result(out, cell)["executor"] for cell in cells} == {"slurm"}
    assert "(n=1)" in (out / "table.md").read_text()
    task = PopulationTask(str(out), "cpu")
    requeued = task.checkpoint([1])  # what submitit requeues on preemption: the same cells
    assert (requeued.function, requeued.args) == (task, ([1],))
    assert [outcome.state for outcome in task([1])] == ["skipped"]


def test_slurm_executor_off_a_cluster_is_one_line(tmp_path):
    outcome = CliRunner().invoke(tagtool, ["benchmark", "--out", str(tmp_path / "b"), "--executor", "slurm",
                                           "--method", "fc-mlp", "--device", "cpu"])
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output
    error = [line for line in outcome.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and ("srun" in error[0] or "pip install '.[slurm]'" in error[0])


# ---------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "args, message",
    [(["--max-parallel", "0"], "must be at least 1"), (["--executor", "pbs"], "Invalid value for '--executor'"),
     (["--executor", "slurm", "--slurm-array-parallelism", "0"], "must be at least 1")],
)
def test_bad_executor_options_give_one_line(tmp_path, args, message):
    outcome = CliRunner().invoke(tagtool, ["benchmark", "--out", str(tmp_path / "b"), *args])
    assert outcome.exit_code == 2 and message in outcome.output
    assert not (tmp_path / "b").exists()


def test_plan_only_lists_the_indices_for_benchmark_cell(tmp_path):
    out = tmp_path / "b"
    outcome = CliRunner().invoke(tagtool, ["benchmark", "--out", str(out), "--method", "convnet", "--plan-only"])
    assert outcome.exit_code == 0, outcome.output
    assert "4 cells; this selection is indices 0-3" in outcome.output
    assert "  3  convnet_texture-mnist2_1000_seed0" in outcome.output
    again = CliRunner().invoke(tagtool, ["benchmark", "--out", str(out), "--method", "fc-mlp", "--plan-only"])
    assert "8 cells; this selection is indices 4-7" in again.output
    bad = CliRunner().invoke(tagtool, ["benchmark-cell", str(out), "--index", "8"])
    assert bad.exit_code == 1 and "Error: --index 8 is out of range: the plan has cells 0 to 7" in bad.output
    unplanned = CliRunner().invoke(tagtool, ["benchmark-cell", str(tmp_path), "--index", "0"])
    assert unplanned.exit_code == 1 and "holds no plan.json" in unplanned.output


def test_benchmark_cell_runs_the_indexed_cell_as_a_slurm_array_task(tmp_path, data_dir, monkeypatch):
    out = planned(tmp_path, data_dir, CELLS[:2])
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "900")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "901")
    outcome = CliRunner().invoke(tagtool, ["benchmark-cell", str(out), "--device", "cpu", "--threads", "1", "--quiet"])
    assert outcome.exit_code == 0, outcome.output
    figures = result(out, CELLS[1])
    assert (figures["executor"], figures["job_id"]) == ("sbatch", "900_1")
    status = CliRunner().invoke(tagtool, ["status", str(out), "--table"])
    assert status.exit_code == 0, status.output
    assert "2 in all: 1 waiting, 1 done" in status.output and "table.md" in status.output


def test_status_of_a_folder_of_training_runs(tmp_path):
    run = tmp_path / "table1" / "shapes-paper-layer"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "tagger", "training": {"epochs": 4}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "seconds": 30.0}) + "\n" for e in (1, 2)))
    text = render_status(status_rows(tmp_path / "table1"))
    assert "shapes-paper-layer  incomplete  2/4     1 min" in text
    assert "1 in all: 1 incomplete; 1 min of training left" in text


def test_status_of_a_benchmark_copied_without_its_runs_files(tmp_path):
    """results/table2-cpu keeps result.json and metrics.jsonl alone (no config, no plan)."""
    cell = CELLS[3]
    run = tmp_path / "runs" / cell.name
    run.mkdir(parents=True)
    (tmp_path / "benchmark.json").write_text(json.dumps({"scale": "cpu"}))
    (run / "result.json").write_text(json.dumps({"method": cell.method, "dataset": cell.dataset, "labels": cell.labels,
                                                 "seed": 0, "permuted": True, "test_error": 12.5}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "seconds": 3.0}) + "\n")
    (tmp_path / "runs" / "my-net").mkdir()  # a user's own row: no cell
    (tmp_path / "runs" / "my-net" / "result.json").write_text(json.dumps({"method": "my-net", "test_error": 1.0}))
    rows = status_rows(tmp_path)
    assert [(r.name, r.state, r.done, r.planned, r.detail) for r in rows] == [
        (cell.name, "done", 1, 1, "12.50 % test error")]
