"""Training speed against what this machine's matrix multiply allows for the same work.

The bound: record every GEMM one training step performs (each linear map's forward, and
its two backward products), time exactly those GEMMs alone on this device in the step's
precision (bf16 for bf16 autocast), and convert to samples per second. A step can only
approach it by keeping everything else (norms, elementwise TAG maths, the optimiser) cheap.
Beside it, the device's peak (a large square matmul, :mod:`tagmodels.speed.peak`) says how
far the step's own GEMM shapes are from what the device can do. The step is the training
loop's: the same autocast, compilation and fused Adam; the same code runs on CPU and CUDA,
synchronised around each timed region only.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.autograd import DeviceType

from tagmodels.speed.peak import datasheet_tflops, measured_matmul_tflops
from tagmodels.timing import seconds_per_call, synchronize
from tagmodels.tagger.model import Tagger
from tagmodels.tagger.presets import get_preset
from tagmodels.training.grouping import tagger_config
from tagmodels.training.loop import adam
from tagmodels.training.step import train_step
from tagmodels.training.precision import autocast, matmul_dtype

GemmShape = tuple[int, int, int]  # (rows, in, out) of one linear map's forward product


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _category(name: str) -> str:
    """matmul, optimizer or other: the split of a step that says where the time over the bound goes."""
    lowered = name.lower()
    if name in MATMUL_OPS or "gemm" in lowered:
        return "matmul"
    if "adam" in lowered:
        return "optimizer"
    return "other"


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's C++ side prints a line to file descriptor 2 at every start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def step_breakdown(step: Callable[[], Any], device: torch.device, steps: int = 5) -> dict[str, float]:
    """Milliseconds per profiled step spent in matmuls and in the optimiser (profiler self time;
    on CUDA, kernel time), the rest being everything else: norms, elementwise TAG arithmetic,
    casts and per-step overheads. The profiler slows a step a little; the split is what counts."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with _native_stderr_silenced(), profile(activities=activities) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        step_ms = 1000 * (time.perf_counter() - started) / steps
    spent = {"matmul": 0.0, "optimizer": 0.0}
    for event in prof.key_averages():
        if event.device_type != DeviceType.CPU:
            continue  # a kernel: its time already counts in the operator that launched it
        us = event.self_device_time_total if cuda else event.self_cpu_time_total
        category = _category(event.key)
        if category in spent:
            spent[category] += us / 1000 / steps
    return {
        "profiled_step_ms": round(step_ms, 2),
        "matmul_ms": round(spent["matmul"], 2),
        "optimizer_ms": round(spent["optimizer"], 2),
        "other_ms": round(step_ms - spent["matmul"] - spent["optimizer"], 2),
    }


def record_gemms(model: nn.Module, step: Callable[[], Any]) -> list[GemmShape]:
    """The (rows, in, out) of every nn.Linear call made while ``step`` runs."""
    shapes: list[GemmShape] = []

    def hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0]
        shapes.append((x.numel() // x.shape[-1], module.in_features, module.out_features))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        step()
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def gemm_seconds(shapes: list[GemmShape], device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Time of the forward GEMM and both backward GEMMs (input and weight gradients) of each shape."""
    total = 0.0
    timed: dict[GemmShape, float] = {}
    for shape in shapes:
        if shape not in timed:
            rows, n_in, n_out = shape
            x = torch.randn(rows, n_in, device=device, dtype=dtype)
            w = torch.randn(n_out, n_in, device=device, dtype=dtype)
            g = torch.randn(rows, n_out, device=device, dtype=dtype)

            def products() -> None:
                x @ w.T  # forward
                g @ w  # gradient with respect to the input
                g.T @ x  # gradient with respect to the weight

            timed[shape] = seconds_per_call(products, device, min_seconds=0.3)
        total += timed[shape]
    return total


def measure_training_speed(
    preset_name: str, device: torch.device, seconds: float = 10.0, seed: int = 0,
    precision: str = "fp32", compile: bool = False, norm: str | None = None,
) -> dict[str, Any]:
    """Training samples per second of a preset's Tagger (``norm`` overriding its
    normalisation) on random data of its input size."""
    preset = get_preset(preset_name).with_overrides(norm=norm)
    kind = "binary" if preset.dataset_kind == "shapes" else "continuous"
    n_inputs = 400 if kind == "binary" else 784
    torch.manual_seed(seed)
    model = Tagger(tagger_config(preset, n_inputs, kind)).to(device)
    optimizer = adam(model, preset.lr)
    batch = torch.rand(preset.batch_size, n_inputs, device=device)
    if kind == "binary":
        batch = (batch < preset.data_mean).float()
    shapes = record_gemms(model, lambda: model(batch, preset.groups, preset.iterations))
    if compile:
        model.compile()
    cast = autocast(precision, device)

    def step() -> None:
        train_step([optimizer], cast, lambda: model.training_cost(model(batch, preset.groups, preset.iterations)))

    started = time.perf_counter()
    step()  # compiles, when asked
    synchronize(device)
    first_step_seconds = time.perf_counter() - started
    step_seconds = seconds_per_call(step, device, min_seconds=seconds)
    breakdown = step_breakdown(step, device)
    bound_seconds = gemm_seconds(shapes, device, matmul_dtype(precision))
    peak_tflops = measured_matmul_tflops(device, matmul_dtype(precision))
    flops = sum(6 * rows * n_in * n_out for rows, n_in, n_out in shapes)
    return {
        "model": "tagger",
        "preset": preset_name,
        "precision": precision,
        "compile": compile,
        "batch_size": preset.batch_size,
        "groups": preset.groups,
        "iterations": preset.iterations,
        "widths": list(preset.widths),
        "norm": preset.norm,
        "gemm_flops_per_sample": flops / preset.batch_size,
        "first_step_seconds": round(first_step_seconds, 3),
        "samples_per_second": preset.batch_size / step_seconds,
        "matmul_bound_samples_per_second": preset.batch_size / bound_seconds,
        "fraction_of_bound": bound_seconds / step_seconds,
        "achieved_gemm_gflops": flops / step_seconds / 1e9,
        "bound_gemm_gflops": flops / bound_seconds / 1e9,
        "matmul_bound_ms": round(1000 * bound_seconds, 2),
        "device_matmul_tflops": peak_tflops,
        "datasheet_matmul_tflops": datasheet_tflops(device, matmul_dtype(precision)),
        "fraction_of_device_peak": flops / step_seconds / 1e12 / peak_tflops,
        "breakdown": breakdown,
    }
