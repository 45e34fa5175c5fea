"""Tagger training end to end on tiny Shapes sets: learning, exact resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

import tagdata
from tagdata.errors import UserError
from tagmodels.tagger.evaluation import evaluate_grouping
from tagmodels.training.data import load_split
from tagmodels.training.grouping import load_tagger, new_run_config, train_taggers
from tagmodels.training.resume import held_settings
from tagmodels.training.runs import RunDir


@pytest.fixture(scope="module")
def training_shapes(tmp_path_factory) -> Path:
    """100 training images: enough for a small Tagger to learn to group within a minute."""
    path = tmp_path_factory.mktemp("data") / "shapes.h5"
    spec = tagdata.with_overrides(tagdata.resolve_spec("shapes"), train=100, valid=50, test=50, single=0)
    tagdata.make_dataset(spec, path)
    return path


def run_config(data: Path, **overrides) -> dict:
    settings = dict(epochs=2, batch_size=50, valid_examples=50)
    settings.update(overrides)
    config = new_run_config("shapes-small", str(data), seed=3, device=torch.device("cpu"), **{
        k: v for k, v in settings.items() if k != "valid_examples"
    })
    config["training"]["valid_examples"] = settings["valid_examples"]
    config["tagger"]["widths"] = [64, 32, 16]
    return config


def train_tagger(run: RunDir, config: dict, device: torch.device, resume: bool, progress: bool) -> tuple:
    """One run (a population of one): its model and history; a divergence raises."""
    ((model, trained),) = train_taggers([run], [config], device, resume, progress)
    if trained.diverged is not None:
        raise trained.diverged
    return model, trained.history


@pytest.mark.parametrize("adam_betas", [None, (0.5, 0.99)], ids=["default-adam", "adam-betas"])
def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(training_shapes, tmp_path, adam_betas):
    straight = RunDir(tmp_path / "straight")
    config = run_config(training_shapes, adam_betas=adam_betas)
    straight.create(config)
    train_tagger(straight, config, torch.device("cpu"), resume=False, progress=False)

    killed = RunDir(tmp_path / "killed")
    killed.create(config)
    first_epoch = {**config, "training": {**config["training"], "epochs": 1}}
    train_tagger(killed, first_epoch, torch.device("cpu"), resume=False, progress=False)
    assert len(killed.metrics_path.read_text().splitlines()) == 1
    stale = killed.path / ".checkpoint.pt.abc123.tmp"  # as left by a kill during a save
    stale.write_bytes(b"half a checkpoint")
    _, history = train_tagger(killed, config, torch.device("cpu"), resume=True, progress=False)

    assert [row["epoch"] for row in history] == [1, 2]
    a = torch.load(straight.checkpoint_path, weights_only=False)["model"]
    b = torch.load(killed.checkpoint_path, weights_only=False)["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not stale.exists()
    lines = [json.loads(line) for line in killed.metrics_path.read_text().splitlines()]
    assert [row["cost"] for row in lines] == [row["cost"] for row in history]
    for run in (straight, killed):  # the preset's Adam betas reach the optimiser and the resume holds them
        (group,) = run.load_checkpoint()["optimizer"]["param_groups"]
        assert tuple(group["betas"]) == (adam_betas or (0.9, 0.999))


def test_small_tagger_overfits_tiny_shapes_far_above_chance(training_shapes, tmp_path):
    """A hundred images, well under a minute of CPU: AMI climbs far above the ~0 of random groups."""
    run = RunDir(tmp_path / "overfit")
    config = run_config(training_shapes, epochs=100, batch_size=20, lr=3e-3, valid_examples=20)
    config["tagger"]["widths"] = [200, 100, 50]
    run.create(config)
    train_tagger(run, config, torch.device("cpu"), resume=False, progress=False)
    model = load_tagger(run, torch.device("cpu")).model
    train = load_split(str(training_shapes), "train", limit=100)
    rows = evaluate_grouping(model, train.x, train.segmentation, groups=4, iterations=5)
    assert rows[-1]["ami"] > 0.25  # random groups score 0.00 +- 0.01
    history = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert history[-1]["cost"] < 0.6 * history[0]["cost"]


def invoke(*args: str):
    return CliRunner().invoke(tagtool, list(args), catch_exceptions=False)


def test_cli_train_evaluate_visualize(training_shapes, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--data", str(training_shapes), "--out", str(out), "--preset", "shapes-small",
                    "--epochs", "1", "--batch-size", "100", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["tagger"]["n_inputs"] == 400 and config["tagger"]["input_kind"] == "binary"
    assert config["provenance"]["seed"] == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(metrics[0]) >= {"epoch", "cost", "valid_cost", "valid_ami", "seconds"}
    assert metrics[0]["ami_average_method"] == "max"

    threads_before = torch.get_num_threads()
    try:
        result = invoke("evaluate", str(out), "--iterations", "3", "--groups", "3", "--limit", "40",
                        "--threads", "1", "--json", str(tmp_path / "eval.json"))
    finally:
        torch.set_num_threads(threads_before)
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "eval.json").read_text())
    assert [row["iteration"] for row in table["iterations"]] == [1, 2, 3]
    assert table["groups"] == 3 and table["examples"] == 40
    assert table["split"] == "test" and table["ami_average_method"] == "max"
    assert table["denoising_cost_split"] == "valid" and table["denoising_cost_examples"] == 40
    assert {"ami", "ari", "denoising_cost"} <= set(table["iterations"][0])
    assert {"command", "commit", "device", "seed", "wall_seconds"} <= set(table)
    assert table["threads"] == 1  # --threads, as a training command takes it
    assert table["training"]["epochs"] == 1 and table["training"]["norm"] == "layer"
    # What makes the model another than the paper's Tagger, for table1 to keep such runs apart.
    assert table["training"]["model_changes"] == {"widths": [500, 250, 125], "norm": "layer"}
    assert "paper_table_1a" not in table  # evaluated with K=3: the paper's figures are for K=4

    # By default the run's K groups and the preset's 5 evaluation iterations (Section 3.1).
    result = invoke("evaluate", str(out), "--limit", "10", "--json", str(tmp_path / "default.json"))
    assert result.exit_code == 0, result.output
    default = json.loads((tmp_path / "default.json").read_text())
    assert default["groups"] == 4 and [row["iteration"] for row in default["iterations"]] == [1, 2, 3, 4, 5]

    result = invoke("evaluate", str(out), "--iterations", "6", "--limit", "20", "--json", str(tmp_path / "eval4.json"))
    assert result.exit_code == 0, result.output
    paper = json.loads((tmp_path / "eval4.json").read_text())["paper_table_1a"]
    assert paper["model"] == "Tagger*" and paper["training_hours"] == 3.0
    assert [row["ami"] for row in paper["iterations"]] == [0.70, 0.90, 0.95, 0.96, 0.97, None]

    # Table 1 over "seeds": two evaluations of the run give a median with n = 2.
    result = invoke("evaluate", str(out), "--iterations", "6", "--limit", "20", "--seed", "1",
                    "--json", str(tmp_path / "eval5.json"))
    planned_longer = json.loads((tmp_path / "eval5.json").read_text())
    planned_longer["training"]["epochs"] = 3  # as if its run had been stopped after 1 of 3 epochs
    (tmp_path / "eval5.json").write_text(json.dumps(planned_longer))
    result = invoke("table1", str(tmp_path / "eval4.json"), str(tmp_path / "eval5.json"),
                    "--json", str(tmp_path / "t1.json"), "--out", str(tmp_path / "t1.md"))
    assert result.exit_code == 0, result.output
    small = "Tagger* (widths 500-250-125)"  # shapes-small: named, never pooled with the paper's model
    t1 = json.loads((tmp_path / "t1.json").read_text())["models"][small]
    evals = [json.loads((tmp_path / f"eval{i}.json").read_text())["iterations"] for i in (4, 5)]
    assert t1["iterations"][0]["ami"]["n"] == 2
    assert t1["iterations"][0]["ami"]["median"] == pytest.approx((evals[0][0]["ami"] + evals[1][0]["ami"]) / 2)
    assert t1["iterations"][0]["paper"] == {"ami": 0.70, "denoising_cost": 0.100}
    t1_md = (tmp_path / "t1.md").read_text()
    assert t1["table_1b"]["iteration"] == 6 and small in t1_md
    assert f"- {small}: seed 0, 1 of 1 epochs; seed 0, 1 of 3 epochs (cut short)" in t1_md
    assert f"From `{tmp_path / 'eval4.json'}`, `{tmp_path / 'eval5.json'}`" in t1_md
    first_row = next(line for line in t1_md.splitlines() if line.startswith(f"| {small} | 1 |"))
    cells = [cell.strip() for cell in first_row.strip("|").split("|")]
    assert (cells[3], cells[5]) == ("0.70", "0.100")  # the paper's figures with the paper's digits
    result = invoke("table1", str(tmp_path / "eval4.json"), str(tmp_path / "eval.json"))
    assert result.exit_code == 1 and "differ in groups" in result.output
    # A run of another model (here: a rank-48 z read-out) gets a row of its own.
    planned_longer["training"]["model_changes"]["z_rank"] = 48
    (tmp_path / "eval5.json").write_text(json.dumps(planned_longer))
    result = invoke("table1", str(tmp_path / "eval4.json"), str(tmp_path / "eval5.json"), "--json", str(tmp_path / "t2.json"))
    assert result.exit_code == 0, result.output
    models = json.loads((tmp_path / "t2.json").read_text())["models"]
    assert list(models) == [small, "Tagger* (widths 500-250-125, z_rank 48)"]
    assert [model["iterations"][0]["ami"]["n"] for model in models.values()] == [1, 1]

    png = tmp_path / "fig.png"
    result = invoke("visualize", str(out), "--out", str(png), "--n", "2", "--iterations", "2", "--remove-group", "1")
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] > 500 and image.size[1] > 300


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "{tmp}/nothing"], "does not exist"),
        (["train", "--data", "{tmp}/missing.h5", "--out", "{tmp}/r"], "does not exist"),
        (["train", "--data", "{data}", "--out", "{tmp}/r", "--preset", "texture-small"], "texture-mnist"),
        (["train", "--data", "{data}", "--out", "{tmp}/r", "--device", "cuda:0"], "CUDA"),
        (["train", "--data", "{data}", "--out", "{tmp}/no/such/dir/r"], "does not exist"),
        (["train", "--data", "{tmp}/junk.h5", "--out", "{tmp}/r"], "junk.h5"),
        (["train", "--out", "{tmp}/r", "--resume"], "does not exist"),
    ],
)
def test_cli_bad_input_gives_one_line(training_shapes, tmp_path, args, message):
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file")
    args = [a.format(tmp=tmp_path, data=training_shapes) for a in args]
    result = CliRunner().invoke(tagtool, args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "r").exists()


def test_a_budget_trains_the_epochs_that_fit_at_the_measured_speed(training_shapes, tmp_path, monkeypatch):
    # 100 training images in batches of 32: 4 steps; 50 validation images: 2 batches at a third
    # of a step each. At 0.25 s per step an epoch is 1.1667 s, so 0.1 min holds 5 whole epochs.
    timed = []

    def step_seconds(objectives, device, precision, seconds, batched, examples):
        timed.append((len(objectives), examples, len(objectives[0].x)))
        return 0.25

    monkeypatch.setattr("tagmodels.training.grouping.step_seconds", step_seconds)
    out = tmp_path / "pop"
    result = CliRunner().invoke(tagtool, [
        "train", "--data", str(training_shapes), "--out", str(out), "--preset", "demo", "--batch-size", "32",
        "--seeds", "0-1", "--budget-minutes", "0.1", "--threads", "1",
    ])
    assert result.exit_code == 0, result.output
    assert timed == [(2, 32, 100)]  # the whole population, at the run's own batch and data
    assert "5 epochs fit 0.1 min at the 256 samples/s measured here" in result.output
    for seed in ("seed-0", "seed-1"):
        config = json.loads((out / seed / "config.json").read_text())
        assert config["training"]["epochs"] == 5
        assert config["budget"] == {"minutes": 0.1, "samples_per_second": 256.0, "epochs": 5}
        assert len((out / seed / "metrics.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("extra", [["--epochs", "2"], ["--compile"]])
def test_a_budget_is_refused_beside_fixed_epochs_or_compilation(training_shapes, tmp_path, extra):
    result = CliRunner().invoke(tagtool, [
        "train", "--data", str(training_shapes), "--out", str(tmp_path / "r"), "--budget-minutes", "1", *extra,
    ])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: --budget-minutes chooses the epochs of a new run from the speed of uncompiled steps: "
        "give it without --epochs, --resume and --compile"
    ]
    assert not (tmp_path / "r").exists()


def test_cli_refuses_to_clobber_a_run(training_shapes, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    result = CliRunner().invoke(tagtool, ["train", "--data", str(training_shapes), "--out", str(out)])
    assert result.exit_code != 0 and "--resume" in result.output


def test_cli_trains_continuous_tagger_on_texture_mnist(texture_file, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--data", str(texture_file), "--out", str(out), "--preset", "texture-small",
                    "--epochs", "2", "--batch-size", "10", "--quiet")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["tagger"]
    assert config["input_kind"] == "continuous" and config["n_inputs"] == 784
    assert config["gate_sigmoid"] and config["data_mean"] == 0.5
    model = load_tagger(RunDir(out), torch.device("cpu")).model
    assert model.variance.item() != pytest.approx(torch.nn.functional.softplus(torch.tensor(1.0)).item())
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert history[1]["cost"] < history[0]["cost"]
    result = invoke("evaluate", str(out), "--json", str(tmp_path / "eval.json"))
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "eval.json").read_text())["iterations"]
    assert len(rows) == 5 and all(-1 <= row["ami"] <= 1 for row in rows)


def test_speed_train_reports_speed_beside_the_matmul_bound(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("speed-train", "--preset", "shapes-small", "--seconds", "0.5", "--device", "cpu",
                    "--precision", "fp32", "--precision", "bf16", "--compile", "off", "--norm", "batch", "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [(s["precision"], s["compile"]) for s in report["settings"]] == [("fp32", False), ("bf16", False)]
    assert report["settings"][0]["norm"] == "batch"  # shapes-small is LayerNorm; --norm overrides it
    assert set(report["cpu_flags"]) == {"amx_bf16", "avx512_bf16"} and "onednn_max_cpu_isa" in report
    assert {"command", "commit", "device", "wall_seconds"} <= set(report)
    bench = report["settings"][0]
    assert bench["samples_per_second"] > 0 and bench["matmul_bound_samples_per_second"] > 0
    assert bench["fraction_of_bound"] == pytest.approx(
        bench["samples_per_second"] / bench["matmul_bound_samples_per_second"]
    )
    assert bench["device_matmul_tflops"] > 0 and bench["datasheet_matmul_tflops"] is None  # a CPU has no datasheet entry
    assert bench["fraction_of_device_peak"] == pytest.approx(
        bench["achieved_gemm_gflops"] / 1000 / bench["device_matmul_tflops"], rel=1e-3
    )
    parts = bench["breakdown"]  # the profiled step: matmuls, the fused Adam, and the rest
    assert parts["matmul_ms"] > 0 and parts["optimizer_ms"] > 0
    total = parts["matmul_ms"] + parts["optimizer_ms"] + parts["other_ms"]
    assert total == pytest.approx(parts["profiled_step_ms"], abs=0.05)
    assert parts["other_ms"] > 0  # norms and elementwise work are never free
    # shapes-small per sample: 4 groups x 3 iterations x 6 x (the GEMM sizes of one group)
    widths, n = (500, 250, 125), 400
    macs = 4 * n * widths[0] + widths[0] * widths[1] + widths[1] * widths[2]
    macs += widths[2] * widths[1] + widths[1] * widths[0] + 2 * widths[0] * n
    assert bench["gemm_flops_per_sample"] == pytest.approx(4 * 3 * 6 * macs)


@pytest.mark.parametrize("amx, avx512_bf16, cap, expected", [
    (True, True, None, "bf16"),
    (False, True, None, "fp32"),  # AVX512-BF16 alone: bf16 trained at 0.69x fp32
    (False, False, None, "fp32"),
    (True, True, "AVX512_CORE_BF16", "fp32"),  # AMX capped away
    (True, True, "avx512_core_amx", "bf16"),
])
def test_auto_precision_is_bf16_only_where_amx_serves_the_matmuls(monkeypatch, amx, avx512_bf16, cap, expected):
    from tagmodels.training import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: {"amx_bf16": amx, "avx512_bf16": avx512_bf16})
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert precision.resolve_precision("auto", torch.device("cpu")) == expected


def test_ablation_trains_three_variants_and_reports_their_curves(training_shapes, tmp_path):
    result = invoke("ablation", "--data", str(training_shapes), "--out", str(tmp_path / "runs"), "--epochs", "1",
                    "--iterations", "2", "--device", "cpu", "--json", str(tmp_path / "ablation.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ablation.json").read_text())
    assert set(report["variants"]) == {"full", "no-delta-z", "no-likelihood"}
    for name, zeroed in (("full", []), ("no-delta-z", ["delta_z"]), ("no-likelihood", ["likelihood"])):
        assert report["variants"][name]["changes"].get("zeroed_inputs", []) == zeroed and len(report["variants"][name]["ami"]) == 2
        assert json.loads((tmp_path / "runs" / name / "config.json").read_text())["tagger"]["zeroed_inputs"] == zeroed
    assert report["ami_average_method"] == "max"


def test_a_study_sets_each_variants_change_on_its_runs_and_reports_the_spread(training_shapes, tmp_path):
    out = tmp_path / "study"
    result = invoke("ablation", "--data", str(training_shapes), "--out", str(out), "--study", "shapes-gap",
                    "--only", "top-relu,base,lr-decay-second-half", "--epochs", "2", "--seeds", "0-1",
                    "--split", "valid", "--iterations", "2", "--device", "cpu", "--json", str(tmp_path / "s.json"),
                    "--table", str(tmp_path / "s.md"), "--png", str(tmp_path / "s.png"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s.json").read_text())
    assert list(report["variants"]) == ["base", "lr-decay-second-half", "top-relu"]  # the study's order
    assert report["split"] == "valid" and report["seeds"] == [0, 1]

    def config(name: str, seed: int) -> dict:
        return json.loads((out / name / f"seed-{seed}" / "config.json").read_text())

    for seed in (0, 1):
        assert config("top-relu", seed)["tagger"]["top_activation"] == "relu"
        assert config("base", seed)["tagger"]["top_activation"] == "softmax"
        assert config("lr-decay-second-half", seed)["training"]["lr_decay_from"] == 1
    row = report["variants"]["top-relu"]
    assert set(row["per_seed"]) == {"0", "1"} and row["final_ami"]["min"] <= row["ami"][-1] <= row["final_ami"]["max"]
    table = (tmp_path / "s.md").read_text()
    assert "| top-relu | top_activation=relu |" in table and "| base | none |" in table
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_norm_split_study_puts_each_normalisation_where_its_variant_says(training_shapes, tmp_path):
    out = tmp_path / "study"
    result = invoke("ablation", "--data", str(training_shapes), "--out", str(out), "--study", "norm-split",
                    "--only", "ladder-batch-tag-layer,ladder-layer-tag-batch,batch-z-layer", "--epochs", "1",
                    "--split", "valid", "--iterations", "1", "--device", "cpu", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    for name, ladder, tag in [("ladder-batch-tag-layer", torch.nn.BatchNorm1d, torch.nn.LayerNorm),
                              ("ladder-layer-tag-batch", torch.nn.LayerNorm, torch.nn.BatchNorm1d)]:
        model = load_tagger(RunDir(out / name), torch.device("cpu")).model
        assert {type(norm) for norm in [*model.ladder.encoder_norm, *model.ladder.decoder_norm]} == {ladder}
        assert {type(norm) for norm in (model.input_norm, model.z_norm, model.m_norm)} == {tag}
    model = load_tagger(RunDir(out / "batch-z-layer"), torch.device("cpu")).model
    assert isinstance(model.z_norm, torch.nn.LayerNorm) and isinstance(model.m_norm, torch.nn.BatchNorm1d)
    assert list(json.loads((tmp_path / "s.json").read_text())["variants"]) == [
        "ladder-layer-tag-batch", "ladder-batch-tag-layer", "batch-z-layer"]  # the study's order


def test_the_texture_study_trains_k_groups_and_keeps_each_variants_validation_ami_per_epoch(texture_file, tmp_path):
    out = tmp_path / "study"
    result = invoke("ablation", "--data", str(texture_file), "--out", str(out), "--study", "texture-grouping",
                    "--only", "base,release-variance,iterations-5,width-half,groups-4", "--preset", "texture-cpu",
                    "--groups", "2", "--epochs", "2", "--split", "valid", "--iterations", "2", "--device", "cpu",
                    "--json", str(tmp_path / "t.json"), "--png", str(tmp_path / "t.png"))
    assert result.exit_code == 0, result.output

    def config(name: str) -> dict:
        return json.loads((out / name / "config.json").read_text())

    assert {config(name)["training"]["groups"] for name in ("base", "release-variance", "iterations-5")} == {2}
    assert config("iterations-5")["training"]["iterations"] == 5 and config("base")["training"]["iterations"] == 3
    assert config("width-half")["tagger"]["widths"] == [400, 200, 100]
    assert config("groups-4")["training"]["groups"] == 4  # the variant's K over --groups
    release = config("release-variance")["tagger"]
    assert (release["variance_map"], release["likelihood_variance"]) == ("exp-asinh", "v-squared")
    report = json.loads((tmp_path / "t.json").read_text())
    history = [json.loads(line) for line in (out / "base" / "metrics.jsonl").read_text().splitlines()]
    assert report["variants"]["base"]["valid_ami_per_epoch"] == [round(row["valid_ami"], 4) for row in history]
    assert len(history) == 2 and (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_study_refuses_a_variant_it_does_not_have(training_shapes, tmp_path):
    result = invoke("ablation", "--data", str(training_shapes), "--out", str(tmp_path / "study"), "--study",
                    "shapes-gap", "--only", "base,no-such-variant", "--device", "cpu")
    assert result.exit_code != 0 and "no-such-variant not in the shapes-gap study" in result.output
    assert not (tmp_path / "study").exists()


def test_the_presets_lr_decay_reaches_the_schedule(training_shapes, tmp_path):
    config = run_config(training_shapes, epochs=3, lr_decay_from=1, widths=(16, 8))
    run = RunDir(tmp_path / "decayed")
    run.create(config)
    _, history = train_tagger(run, config, torch.device("cpu"), resume=False, progress=False)
    lr = config["training"]["lr"]
    assert [row["lr"] for row in history] == [lr, lr, lr / 2]  # full rate up to epoch 1, then linearly to 0


def test_adam_betas_outside_zero_to_one_are_refused(training_shapes):
    assert tuple(run_config(training_shapes)["training"]["adam_betas"]) == (0.9, 0.999)
    with pytest.raises(UserError, match=r"adam_betas must be two numbers in \[0, 1\)"):
        run_config(training_shapes, adam_betas=(0.9, 1.0))


def test_an_lr_decay_outside_the_run_is_refused(training_shapes):
    with pytest.raises(UserError, match="lr decay must start within the 2 epochs"):
        run_config(training_shapes, lr_decay_from=2)


def test_zeroed_inputs_reach_the_network_as_zeros():
    from tagmodels.tagger.model import Tagger, TaggerConfig

    model = Tagger(TaggerConfig(n_inputs=5, widths=(6, 4), zeroed_inputs=("delta_z",)))
    seen = []
    model.input_map.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model(torch.rand(2, 5).round(), groups=3, iterations=1)
    blocks = seen[0].view(2, 3, 4, 5)
    assert torch.all(blocks[:, :, 1] == 0) and torch.all(blocks[:, :, 3] > 0)
    with pytest.raises(ValueError, match="cannot zero"):
        Tagger(TaggerConfig(n_inputs=5, widths=(6, 4), zeroed_inputs=("m",)))


def test_compare_draws_runs_on_shared_axes(training_shapes, tmp_path):
    for precision in ("fp32", "bf16"):
        result = invoke("train", "--data", str(training_shapes), "--out", str(tmp_path / precision), "--preset",
                        "shapes-small", "--epochs", "2", "--precision", precision, "--quiet", "--device", "cpu")
        assert result.exit_code == 0, result.output
    result = invoke("compare", str(tmp_path / "fp32"), str(tmp_path / "bf16"), "--out", str(tmp_path / "c.png"),
                    "--json", str(tmp_path / "c.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "c.json").read_text())
    assert {name: run["training"]["precision"] for name, run in report["runs"].items()} == {"fp32": "fp32", "bf16": "bf16"}
    assert [len(run["history"]) for run in report["runs"].values()] == [2, 2]
    from PIL import Image

    with Image.open(tmp_path / "c.png") as image:
        # cost, AMI, the rms of z on each of the three shapes' layers, the last epoch's AMI per iteration
        assert image.size[0] == 6 * 380 + 5 * 6
    result = invoke("compare", str(tmp_path / "fp32"), str(tmp_path / "bf16"), "--epochs", "1", "--out",
                    str(tmp_path / "e.png"), "--json", str(tmp_path / "e.json"))
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "e.json").read_text())["runs"]
    assert [run["history"] for run in first.values()] == [run["history"][:1] for run in report["runs"].values()]
    result = invoke("compare", str(tmp_path / "fp32"), str(tmp_path / "nothing"), "--out", str(tmp_path / "d.png"))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_generalization_scores_each_dataset_with_each_k(training_shapes, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "--data", str(training_shapes), "--out", str(out), "--epochs", "1", "--quiet",
                  "--device", "cpu").exit_code == 0
    two = tmp_path / "shapes-2obj.h5"
    tagdata.make_dataset(tagdata.with_overrides(tagdata.resolve_spec("shapes-2obj"), train=10, valid=10, test=30, single=0), two)
    result = invoke("generalization", str(out), "--data", str(training_shapes), "--data", str(two), "--groups", "2",
                    "--groups", "3", "--iterations", "2", "--json", str(tmp_path / "g.json"), "--out", str(tmp_path / "g.md"))
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "g.json").read_text())
    assert [(c["data"], c["groups"]) for c in table["cells"]] == [
        ("shapes", 2), ("shapes", 3), ("shapes-2obj", 2), ("shapes-2obj", 3)]
    assert all(len(c["ami_per_iteration"]) == 2 and c["ami"] == c["ami_per_iteration"][-1] for c in table["cells"])
    assert table["trained_epochs"] == 1 and "| shapes-2obj |" in (tmp_path / "g.md").read_text()


def test_initial_variance_and_delta_z_form_reach_the_model_and_resume_holds_them(texture_file):
    config = new_run_config("texture-small", str(texture_file), seed=0, device=torch.device("cpu"),
                            initial_variance=0.05, delta_z_form="gradient")
    assert config["tagger"]["initial_variance"] == 0.05 and config["tagger"]["delta_z_form"] == "gradient"
    held = held_settings(config)
    assert held["initial_variance"] == 0.05 and held["delta_z_form"] == "gradient"
    with pytest.raises(UserError, match="--initial-variance"):
        new_run_config("texture-small", str(texture_file), seed=0, device=torch.device("cpu"), initial_variance=-1.0)


def test_z_input_reaches_the_model_and_resume_holds_it(training_shapes):
    config = new_run_config("shapes-small", str(training_shapes), seed=0, device=torch.device("cpu"), z_input="logit")
    assert config["tagger"]["z_input"] == "logit" and held_settings(config)["z_input"] == "logit"


def test_widths_reach_the_model_and_resume_holds_them(training_shapes, tmp_path):
    out = tmp_path / "run"
    invoke = CliRunner().invoke
    base = ["train", "--out", str(out), "--epochs", "1", "--quiet", "--device", "cpu"]
    result = invoke(tagtool, [*base, "--data", str(training_shapes), "--preset", "demo", "--widths", "12,6,3"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["tagger"]["widths"] == [12, 6, 3] and held_settings(config)["widths"] == (12, 6, 3)
    model = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    assert model["input_map.weight"].shape[0] == 12
    held = invoke(tagtool, ["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet", "--widths", "12,6,3"])
    assert held.exit_code == 0, held.output
    refused = invoke(tagtool, ["train", "--out", str(out), "--resume", "--epochs", "3", "--widths", "12,6"])
    assert refused.exit_code == 1 and "--widths (12, 6) contradicts" in refused.output
    bad = invoke(tagtool, [*base[:2], str(tmp_path / "bad"), "--data", str(training_shapes), "--widths", "12,0"])
    assert bad.exit_code == 2 and "every width must be at least 1" in bad.output and not (tmp_path / "bad").exists()


def test_a_budget_counts_whole_epochs_and_at_least_one():
    from tagmodels.training.budget import epochs_within

    assert epochs_within(1.0, 10.0, train_examples=100, batch_size=32, valid_examples=50) == 1
    assert epochs_within(7.5, 0.25, train_examples=100, batch_size=32, valid_examples=50) == 6  # 1.1667 s each


def test_the_texture_split_study_sets_the_z_rank_and_m0_smoothing_of_a_population(texture_file, tmp_path):
    out = tmp_path / "split"
    result = invoke("ablation", "--data", str(texture_file), "--out", str(out), "--study", "texture-split",
                    "--only", "z-rank-48-m0-smooth3", "--preset", "texture-cpu", "--groups", "2", "--epochs", "1",
                    "--seeds", "0-1", "--split", "valid", "--iterations", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    for seed in (0, 1):
        tagger = json.loads((out / "z-rank-48-m0-smooth3" / f"seed-{seed}" / "config.json").read_text())["tagger"]
        assert (tagger["z_rank"], tagger["m0_smoothing"], tagger["widths"]) == (48, 3.0, [800, 400, 200])


def test_table1_names_evaluations_from_before_model_changes_by_their_preset():
    from tagmodels.experiments.table1 import model_name

    assert model_name({"norm": "batch", "preset": "shapes-paper"}) == "Tagger"
    assert model_name({"norm": "layer", "preset": "demo"}) == "Tagger* (preset demo)"
    assert model_name({"norm": "batch", "preset": "demo", "model_changes": {"z_norm": "layer"}}) == "Tagger (z_norm layer)"
