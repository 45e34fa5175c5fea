"""Definitions of the model core that the paper, Rasmus et al. (2015) and the 2016 release fix,
each checked against arithmetic written here rather than against the module's own helpers.

- what each normalisation uses, at training and at evaluation (Tagger: the batch's own
  statistics pooled over examples and groups, as the release does, in both modes; Tagger*:
  LayerNorm, one row at a time);
- what each Ladder layer passes sideways (the normalised pre-activation z_l, Rasmus et al.
  Section 2-3), upwards (ReLU(z_l + b_l); the top softmax(c (z_L + b_L))) and downwards
  (u_l = normalise(V_l z^_{l+1}));
- the Tagger's input projection and read-outs (Section 2.2, Appendix A.6);
- each parameter's initial value (weights N(0, 1) / sqrt(fan_in), the combinator's a2 = a7 = 1);
- which iteration and which input each figure is read from (the per-iteration cost, the
  denoising cost on corrupted input, the AMI on clean input: Section 3.1), and which pixels
  the AMI counts (those of exactly one shape).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tagdata.layout import UNSCORED
from tagmodels.tagger.evaluation import denoising_cost_per_iteration, grouping_per_iteration
from tagmodels.tagger.classifier import TaggerClassifier
from tagmodels.tagger.ladder import Ladder
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.tagger.presets import PRESETS
from tagmodels.training.data import load_split
from tagmodels.training.grouping import GroupingObjective

D = torch.double
EPS = 1e-5  # the tolerances below also admit the release's 1e-10


def batch_norm(t: torch.Tensor) -> torch.Tensor:
    """Each unit normalised over all rows with the rows' own mean and (biased) variance."""
    return (t - t.mean(0)) / torch.sqrt(t.var(0, unbiased=False) + EPS)


def layer_norm(t: torch.Tensor) -> torch.Tensor:
    """Each row normalised over its own units."""
    return (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + EPS)


NORMS = {"batch": batch_norm, "layer": layer_norm}


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def perturbed(model: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Move every parameter off its initial value (zero biases and identity gates hide slips)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return model


def tagger(kind: str = "binary", norm: str = "batch") -> Tagger:
    """A 10-pixel Tagger with a 12-8-5 Ladder, parameters off their initial values."""
    torch.manual_seed(0)
    config = TaggerConfig(n_inputs=10, input_kind=kind, widths=(12, 8, 5), norm=norm,
                          data_mean=0.26 if kind == "binary" else 0.5, gate_sigmoid=kind == "continuous")
    return perturbed(Tagger(config).double())


def inputs(kind: str = "binary", seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """4 examples x and initial assignments log m^0 for 3 groups."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 10, generator=g, dtype=D)
    if kind == "binary":
        x = (x < 0.4).double()
    log_m0 = torch.log_softmax(torch.randn(4, 3, 10, generator=g, dtype=D), dim=1)
    return x, log_m0


def record_norms(model: nn.Module) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """(module, input, output) of every normalisation call, in call order."""
    calls = []
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
            module.register_forward_hook(lambda mod, args, out: calls.append((mod, args[0].detach(), out.detach())))
    return calls


# ---------------------------------------------------------------------------- normalisation


def grown(model: Tagger) -> Tagger:
    """The supervised phase's Tagger: two fresh layers and an 11-unit top on its Ladder."""
    return perturbed(TaggerClassifier(model, (6, 5), groups=3).tagger.double(), seed=1)


@pytest.mark.parametrize("kind, build", [("binary", tagger), ("continuous", tagger),
                                          ("continuous", lambda kind: grown(tagger(kind)))],
                         ids=["binary", "continuous", "classifier"])
def test_tagger_batchnorm_normalises_with_the_batchs_own_statistics_at_evaluation(kind, build):
    """Every BatchNorm of the Tagger (the classifier's fresh layers too) normalises each unit
    over the batch's examples x groups, with that batch's mean and variance, in evaluation as
    in training (the release keeps no running statistics: one network runs several
    iterations whose activations differ)."""
    model = build(kind)
    for seed in (7, 8):  # training-mode passes on other data, which running statistics would absorb
        model(inputs(kind, seed=seed)[0] * 0.5 + 0.3, groups=3, iterations=2)
    model.eval()
    calls = record_norms(model)
    x, log_m0 = inputs(kind)
    model(x, groups=3, iterations=2, corrupt=False, log_m0=log_m0)
    # per iteration: input projection, the encoder's and the decoder's levels, z and m read-outs
    depth = model.ladder.depth
    assert len(calls) == 2 * (1 + depth + (depth + 1) + 2)
    for module, before, after in calls:
        assert before.shape[0] == 4 * 3  # rows are examples x groups, pooled
        close(after, batch_norm(before))


def test_tagger_batchnorm_gives_the_same_output_in_training_and_evaluation_mode():
    """Batch statistics in both modes: eval() changes nothing, and no batch leaves a trace."""
    model = tagger()
    x, log_m0 = inputs()
    first = model(x, groups=3, iterations=3, corrupt=False, log_m0=log_m0)
    model(1.0 - x, groups=3, iterations=3)  # another training-mode batch in between
    model.eval()
    later = model(x, groups=3, iterations=3, corrupt=False, log_m0=log_m0)
    for i in range(3):
        close(later.z[i], first.z[i])
        close(later.log_m[i], first.log_m[i])


def test_tagger_star_layernorm_normalises_each_row_alone():
    """Tagger* (Table 1, LayerNorm): every normalisation is per row, so an example's
    grouping does not depend on the rest of its batch."""
    model = tagger(norm="layer")
    calls = record_norms(model)
    x, log_m0 = inputs()
    out = model(x, groups=3, iterations=2, corrupt=False, log_m0=log_m0)
    assert len(calls) == 16
    for _, before, after in calls:
        close(after, layer_norm(before))
    alone = model(x[:1], groups=3, iterations=2, corrupt=False, log_m0=log_m0[:1])
    close(alone.log_m[-1], out.log_m[-1][:1])
    close(alone.z[-1], out.z[-1][:1])


# ---------------------------------------------------------------------------- the Ladder


def hand_encoder(ladder: Ladder, x: torch.Tensor, norm: str):
    """Rasmus et al.'s encoder: z_l = N(W_l h_{l-1}), h_l = ReLU(z_l + b_l), top softmax(c (z_L + b_L))."""
    h, lateral = x, [x]
    for layer in range(ladder.depth):
        z = NORMS[norm](h @ ladder.encoder[layer].weight.T)
        lateral.append(z)
        h = z + ladder.encoder_affine[layer].bias
        if layer < ladder.depth - 1:
            h = torch.relu(h)
    logits = ladder.top_scale * h
    return lateral, logits, torch.softmax(logits, dim=-1)


def ladder(norm: str) -> tuple[Ladder, torch.Tensor]:
    torch.manual_seed(3)
    net = perturbed(Ladder((7, 6, 5, 4), norm=norm).double(), scale=0.5, seed=3)
    return net, torch.randn(9, 7, dtype=D)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_ladder_passes_the_normalised_pre_activation_sideways_and_relu_of_it_plus_bias_upwards(norm):
    """Rasmus et al.: the lateral signal of layer l is z_l = N(W_l h_{l-1}), taken before the
    bias and the ReLU (it may be negative); upwards goes ReLU(z_l + b_l); the input layer's
    lateral signal is the input itself."""
    net, x = ladder(norm)
    lateral, logits, top = hand_encoder(net, x, norm)
    out = net(x)
    assert len(out.lateral) == 4
    for got, expected in zip(out.lateral, lateral):
        close(got, expected)
    assert all((z < 0).any() for z in lateral[1:])
    close(out.top_logits, logits)
    close(out.top, top)
    # The combinator receives z_l: with mu = 0 and v = 1 it returns its lateral input unchanged.
    with torch.no_grad():
        for combinator in net.combinator:
            combinator.a.zero_()
            combinator.a[9] = 1.0  # a10: v = 1
    for got, expected in zip(net(x).reconstruction, lateral):
        close(got, expected)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_ladder_decoder_passes_normalised_projection_downwards_starting_from_the_top(norm):
    """u_L = N(h_L), u_l = N(V_l z^_{l+1}): with mu = u and v = 0 the combinator returns u."""
    net, x = ladder(norm)
    with torch.no_grad():
        for combinator in net.combinator:
            combinator.a.zero_()
            combinator.a[3] = 1.0  # a4: mu = u
    out = net(x)
    expected = NORMS[norm](hand_encoder(net, x, norm)[2])
    close(out.reconstruction[-1], expected)
    for layer in reversed(range(net.depth)):
        expected = NORMS[norm](expected @ net.decoder[layer].weight.T)
        close(out.reconstruction[layer], expected)
    assert out.reconstruction[0].shape == x.shape


@pytest.mark.parametrize("gate_sigmoid", [False, True])
def test_the_gate_sigmoid_reaches_every_combinator_of_the_tagger_and_its_grown_layers(gate_sigmoid):
    """Section 2.2: for continuous outputs the paper adds a sigmoid on the gating v "in all the
    decoder layers"; without it, v = a6 sigmoid(a7 u + a8) + a9 u + a10 as in Rasmus et al."""
    torch.manual_seed(0)
    config = TaggerConfig(n_inputs=10, input_kind="continuous", widths=(12, 8, 5), data_mean=0.5,
                          gate_sigmoid=gate_sigmoid)
    model = grown(perturbed(Tagger(config).double()))
    calls = []
    for combinator in model.ladder.combinator:
        combinator.register_forward_hook(lambda mod, args, out: calls.append((mod.a.detach(), *args, out)))
    x, log_m0 = inputs("continuous")
    model(x, groups=3, iterations=1, corrupt=False, log_m0=log_m0)
    assert len(calls) == 6
    for a, z, u, out in calls:
        mu = a[0] * torch.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
        v = a[5] * torch.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
        close(out, (z - mu) * (torch.sigmoid(v) if gate_sigmoid else v) + mu)


# ---------------------------------------------------------------------------- the Tagger's wiring


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_tagger_projects_its_inputs_into_the_ladder_and_reads_z_and_m_from_the_bottom_reconstruction(kind):
    """Appendix A.6: h = ReLU(N(W_h [z, dz, m, L]) + b) is the Ladder's input layer; the next z
    is read from the bottom reconstruction x^ as s N(W_z x^) + b (sigmoid for binary inputs),
    the next m as softmax over groups of c N(W_m x^). BatchNorm here, pooled over all rows."""
    model = tagger(kind)
    seen = {"inputs": [], "h": [], "ladder": []}

    def keep_ladder_call(module, args, out) -> None:
        seen["h"].append(args[0])
        seen["ladder"].append(out)

    model.input_map.register_forward_pre_hook(lambda mod, args: seen["inputs"].append(args[0]))
    model.ladder.register_forward_hook(keep_ladder_call)
    x, log_m0 = inputs(kind)
    out = model(x, groups=3, iterations=2, corrupt=False, log_m0=log_m0)
    for i in range(2):
        h = torch.relu(batch_norm(seen["inputs"][i] @ model.input_map.weight.T) + model.input_affine.bias)
        close(seen["h"][i], h)
        bottom = seen["ladder"][i].reconstruction[0]
        z_pre = model.z_affine.scale * batch_norm(bottom @ model.z_map.weight.T) + model.z_affine.bias
        z = torch.sigmoid(z_pre) if kind == "binary" else z_pre
        close(out.z[i], z.view(4, 3, 10))
        m_logits = (model.m_scale * batch_norm(bottom @ model.m_map.weight.T)).view(4, 3, 10)
        close(out.log_m[i], torch.log_softmax(m_logits, dim=1))


def test_each_iteration_feeds_its_z_and_m_to_the_next():
    """Fig. 2 and Algorithm 3: iteration i + 1 sees [z^i, delta z(z^i, m^i), m^i, L(z^i)],
    recomputed from the new estimates and the same x~ (binary, beta = 0.2, by hand)."""
    model = tagger()
    fed = []
    model.input_map.register_forward_pre_hook(lambda mod, args: fed.append(args[0].view(4, 3, 4, 10)))
    x, log_m0 = inputs()
    out = model(x, groups=3, iterations=3, corrupt=False, log_m0=log_m0)
    for i in (1, 2):
        z, m = out.z[i - 1], out.m[i - 1]
        xi = 0.6 * z + 0.2
        on = x.unsqueeze(1)
        likelihood = on * xi + (1 - on) * (1 - xi)
        blocks = fed[i].unbind(2)
        close(blocks[0], z)
        close(blocks[1], 0.6 * m / ((m * xi).sum(1, keepdim=True) - 1 + on))
        close(blocks[2], m)
        close(blocks[3], likelihood / likelihood.sum(1, keepdim=True))


def test_each_iterations_cost_is_read_from_that_iterations_z_and_m_against_the_clean_x():
    """cost[i] = mean of -log sum_k m^i_k q(x | z^i_k) (equation 2), x the clean input."""
    model = tagger()
    x, log_m0 = inputs()
    torch.manual_seed(11)
    out = model(x, groups=3, iterations=3, corrupt=True, log_m0=log_m0)
    for i in range(3):
        p = (out.m[i] * out.z[i]).sum(1) * (1 - 2e-4) + 1e-4
        close(out.cost[i], -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).mean())


# ---------------------------------------------------------------------------- initial values


def test_every_initial_value_is_the_papers():
    """Weights N(0, 1) / sqrt(fan_in), no bias inside the linear maps; biases 0; scales (z's
    per-element one, m's scalar, the softmax top's c) 1; combinator a2 = a7 = 1, the rest 0
    (Rasmus et al.; a1 = a6 = 0, so every reconstruction starts at 0)."""
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_inputs=60, widths=(120, 100, 80)))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 + 2 + 2 + 2  # input map, encoder, decoder, z and m read-outs
    for linear in linears:
        assert linear.bias is None
        w = linear.weight.detach()
        fan_in = w.shape[1]
        assert abs(w.mean().item()) < 0.05 / math.sqrt(fan_in)
        assert w.std().item() * math.sqrt(fan_in) == pytest.approx(1.0, abs=0.03)
    biases = [model.input_affine.bias, model.z_affine.bias, *(a.bias for a in model.ladder.encoder_affine)]
    assert all(torch.all(b == 0) for b in biases)
    assert torch.all(model.z_affine.scale == 1) and model.m_scale.item() == 1.0
    assert torch.all(model.ladder.top_scale == 1)
    expected_a = torch.zeros(10)
    expected_a[[1, 6]] = 1.0
    for combinator in model.ladder.combinator:
        assert torch.equal(combinator.a.detach(), expected_a[:, None].expand_as(combinator.a))


def test_the_paper_presets_hold_section_3_1s_settings():
    """Section 3.1 and Appendix A.3-A.4: Adam with batch 100, K = 4 groups, 3 training and 5
    evaluation iterations, noise 0.2; Shapes 2000-1000-500, 100 epochs, lr 0.0004, z^0 = 0.26;
    TextureMNIST 3000-2000-1000, 150 unsupervised epochs, lr 0.001, z^0 = 0.5, the sigmoid on
    the combinator gate; BatchNorm (Table 1's Tagger)."""
    shapes, texture = PRESETS["shapes-paper"], PRESETS["texture-paper"]
    for preset in (shapes, texture):
        assert (preset.batch_size, preset.groups, preset.iterations, preset.eval_iterations) == (100, 4, 3, 5)
        assert preset.noise == 0.2 and preset.norm == "batch"
    assert (shapes.widths, shapes.epochs, shapes.lr, shapes.data_mean) == ((2000, 1000, 500), 100, 4e-4, 0.26)
    assert not shapes.gate_sigmoid
    assert (texture.widths, texture.epochs, texture.lr, texture.data_mean) == ((3000, 2000, 1000), 150, 1e-3, 0.5)
    assert texture.gate_sigmoid


# ---------------------------------------------------------------------------- which input each figure reads


def seen_corrupted_input(model: Tagger, groups: int, run) -> torch.Tensor:
    """x~ as the network saw it at the first iteration, recovered from delta z's sign.

    Binary delta z_k = (1 - 2 beta) m_k / (sum_h xi_h m_h - 1 + x~) is positive iff x~ = 1.
    """
    first = []
    handle = model.input_map.register_forward_pre_hook(lambda mod, args: first.append(args[0]) if not first else None)
    run()
    handle.remove()
    n = model.config.n_inputs
    delta_z = first[0].view(-1, groups, 4, n)[:, 0, 1]
    return (delta_z > 0).double()


def test_denoising_cost_is_measured_on_corrupted_input_and_the_ami_on_clean_input():
    """Section 3.1: the denoising cost is the training cost (corrupted input, beta = 0.2); the
    AMI is evaluated on uncorrupted input."""
    model = tagger()
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(200, 10, generator=g, dtype=D) < 0.4).double()
    seg = torch.randint(0, 3, (200, 10), generator=g)
    seen = seen_corrupted_input(model, 3, lambda: denoising_cost_per_iteration(model, x, 3, 2, batch_size=200))
    assert abs((seen != x).double().mean().item() - 0.2) < 0.03
    seen = seen_corrupted_input(model, 3, lambda: grouping_per_iteration(model, x, seg, 3, 2, batch_size=200))
    assert torch.equal(seen, x)


class SegmentationOracle(nn.Module):
    """A stand-in Tagger whose m puts each scored pixel in the group of its object and every
    unscored pixel (background, overlaps) in object 1's group."""

    def __init__(self, segmentation: torch.Tensor) -> None:
        super().__init__()
        self.groups_of_pixels = torch.where(segmentation == 255, 1, segmentation.long())

    def forward(self, x, groups, iterations, corrupt=True, log_m0=None):
        one_hot = nn.functional.one_hot(self.groups_of_pixels, groups).permute(0, 2, 1).double()
        return SimpleNamespace(log_m=[torch.log_softmax(20 * one_hot, dim=1)] * iterations)


def test_the_ami_counts_only_the_pixels_of_exactly_one_shape(shapes_file):
    """Section 3.1: the AMI ignores the background and the overlap regions of Shapes, so a
    grouping right on every pixel of exactly one shape scores 1 whatever it does elsewhere."""
    test = load_split(str(shapes_file), "test")
    rows = grouping_per_iteration(SegmentationOracle(test.segmentation), test.x, test.segmentation,
                                  groups=4, iterations=1, batch_size=len(test))
    assert rows[0]["ami"] == pytest.approx(1.0)


class ImprovingOracle(SegmentationOracle):
    """Right on every scored pixel only at the last iteration (all pixels in one group before),
    with costs 3, 2, 1, ... ending at 1."""

    def forward(self, x, groups, iterations, corrupt=True, log_m0=None):
        right = super().forward(x, groups, iterations).log_m[0]
        one_group = torch.log_softmax(20 * (torch.arange(groups) == 0).double()[None, :, None].expand_as(right), dim=1)
        z = (x + 0.1).unsqueeze(1).expand(-1, groups, -1)  # every group's z off by 0.1
        return SimpleNamespace(log_m=[one_group] * (iterations - 1) + [right], z=[z] * iterations,
                               cost=torch.arange(iterations, 0, -1, dtype=D))


def test_per_epoch_validation_reads_the_last_iteration(shapes_file):
    """The AMI and denoising cost that select the best epoch are those after the last
    iteration, like the paper's figures (Table 1b)."""
    valid = load_split(str(shapes_file), "valid")
    objective = GroupingObjective(ImprovingOracle(valid.segmentation), valid, valid, groups=4, iterations=3,
                                  batch_size=len(valid))
    scores = objective.validate()
    assert scores["valid_ami"] == pytest.approx(1.0) and scores["valid_ami_iterations"][0] < 0.5
    assert scores["valid_cost"] == pytest.approx(1.0)
    labels = set(valid.segmentation[valid.segmentation != UNSCORED].unique().tolist())  # Shapes: no layer 0
    expected = [pytest.approx(0.1) if layer in labels else None for layer in range(max(labels) + 1)]
    assert scores["valid_layer_rms_owner"] == scores["valid_layer_rms_best_group"] == expected
