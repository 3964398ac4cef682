"""MAML: the batched meta-gradient against a per-task torch.func reference, first-order and Meta-SGD
variants, and a short meta-training run on the paper's sinusoids."""

import pytest
import torch
from torch.func import grad

from llm_repair_gym.meta.maml import MAML, MAMLConfig, adapt, losses_after, sharpness
from llm_repair_gym.meta.sinusoid import init_mlp, mse, num_params, sample_points, sample_tasks


def _tasks(t=3, k=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    amplitude, phase = sample_tasks(t, gen)
    return sample_points(amplitude, phase, k, gen), sample_points(amplitude, phase, k, gen)


def _one(theta, x, y):
    return mse(theta[None], (x[None], y[None]))[0]


def _reference_meta_grad(theta, support, query, lr, steps, first_order):
    """Mean over tasks of d L_query(phi_i(theta)) / d theta, one task at a time with torch.func."""
    grads = []
    for i in range(support[0].shape[0]):
        def outer(th, i=i):
            phi = th
            for _ in range(steps):
                g = grad(_one)(phi, support[0][i], support[1][i])
                phi = phi - lr * (g.detach() if first_order else g)
            return _one(phi, query[0][i], query[1][i])
        grads.append(grad(outer)(theta))
    return torch.stack(grads).mean(0)


@pytest.mark.parametrize("steps,first_order", [(1, False), (2, False), (2, True)])
def test_batched_meta_gradient_equals_per_task_reference(steps, first_order):
    support, query = _tasks()
    init = init_mlp(torch.Generator().manual_seed(1)).double()
    support = tuple(s.double() for s in support)
    query = tuple(q.double() for q in query)
    maml = MAML(mse, init, MAMLConfig(inner_lr=0.05, inner_steps=steps, first_order=first_order)).double()
    maml.meta_loss(support, query, num_tasks=3).backward()
    expected = _reference_meta_grad(init, support, query, 0.05, steps, first_order)
    torch.testing.assert_close(maml.theta.grad, expected, rtol=1e-9, atol=1e-12)


def test_second_order_term_matters():
    support, query = _tasks()
    init = init_mlp(torch.Generator().manual_seed(1)).double()
    support, query = tuple(s.double() for s in support), tuple(q.double() for q in query)
    grads = []
    for first_order in (False, True):
        maml = MAML(mse, init, MAMLConfig(inner_lr=0.05, first_order=first_order)).double()
        maml.meta_loss(support, query, 3).backward()
        grads.append(maml.theta.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_meta_sgd_learns_per_parameter_rates():
    support, query = _tasks()
    maml = MAML(mse, init_mlp(torch.Generator().manual_seed(1)), MAMLConfig(inner_lr=0.01, meta_sgd=True))
    assert isinstance(maml.inner_lr, torch.nn.Parameter) and maml.inner_lr.shape == (num_params(),)
    before = maml.inner_lr.detach().clone()
    maml.step(support, query, 3)
    assert maml.inner_lr.grad is not None and maml.inner_lr.grad.abs().sum() > 0
    assert not torch.equal(before, maml.inner_lr.detach())
    plain = MAML(mse, init_mlp(torch.Generator().manual_seed(1)))
    assert "inner_lr" not in dict(plain.named_parameters())


def test_adapt_and_losses_after_agree_and_leave_the_start_untouched():
    support, query = _tasks(t=4)
    start = init_mlp(torch.Generator().manual_seed(2)).expand(4, -1)
    copy = start.clone()
    losses = losses_after(mse, start, support, query, 0.01, [0, 1, 3])
    torch.testing.assert_close(losses[0], mse(start, query))
    torch.testing.assert_close(losses[3], mse(adapt(mse, start, support, 0.01, 3), query).detach())
    assert torch.equal(start, copy)
    manual = start.clone()
    for _ in range(3):
        manual = manual.detach().requires_grad_()
        (g,) = torch.autograd.grad(mse(manual, support).sum(), manual)
        manual = manual - 0.01 * g
    torch.testing.assert_close(adapt(mse, start, support, 0.01, 3), manual.detach())


def test_adam_adaptation_matches_torch_adam():
    support, _ = _tasks(t=2)
    start = init_mlp(torch.Generator().manual_seed(2)).expand(2, -1)
    ours = adapt(mse, start, support, 0.01, 3, rule="adam")
    for i in range(2):
        theta = torch.nn.Parameter(start[i].clone())
        opt = torch.optim.Adam([theta], lr=0.01)
        for _ in range(3):
            opt.zero_grad()
            mse(theta[None], (support[0][i:i + 1], support[1][i:i + 1])).sum().backward()
            opt.step()
        torch.testing.assert_close(ours[i], theta.detach(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="rule must be"):
        adapt(mse, start, support, 0.01, 1, rule="lbfgs")
    with pytest.raises(ValueError, match="Adam adaptation"):
        adapt(mse, start, support, 0.01, 1, create_graph=True, rule="adam")


def test_short_meta_training_makes_one_step_count():
    """After 400 meta-updates one inner step already lowers the held-out loss a lot, and more than it does
    for the initialisation it started from."""
    gen = torch.Generator().manual_seed(3)
    # torch.nn.Linear's wider initialisation: it learns within a test's budget (the paper's 0.01-scale one,
    # init_mlp, needs thousands of updates)
    init = torch.cat([(torch.rand(fan_in * fan_out + fan_out, generator=gen) * 2 - 1) / fan_in**0.5
                      for fan_in, fan_out in ((1, 40), (40, 40), (40, 1))])
    assert init.shape == (num_params(),)
    maml = MAML(mse, init, MAMLConfig(inner_lr=0.01))
    gen = torch.Generator().manual_seed(4)
    for _ in range(400):
        amplitude, phase = sample_tasks(25, gen)
        maml.step(sample_points(amplitude, phase, 10, gen), sample_points(amplitude, phase, 10, gen), 25)
    support, query = _tasks(t=200, k=10, seed=5)
    trained = losses_after(mse, maml.theta.detach().expand(200, -1), support, query, 0.01, [0, 1])
    untrained = losses_after(mse, init.expand(200, -1), support, query, 0.01, [0, 1])
    assert trained[1].mean() < 0.8 * trained[0].mean()
    assert trained[1].mean() < 0.8 * untrained[1].mean()


@pytest.mark.parametrize("inner_steps", [
    5,
    pytest.param(1, marks=pytest.mark.xfail(strict=True, reason="meta-trained for one step, the same run's "
                                                                 "fine-tuning blows up: the check can fail")),
])
def test_fine_tuning_a_freshly_meta_trained_sinusoid_net_stays_finite_for_ten_steps(inner_steps):
    """Ten plain steps from a freshly meta-trained initialization stay finite on 600 fixed held-out tasks
    (K = 5 and 10) and end below where one step got, when meta-training went through five inner steps; and
    that meta-training learned: ten steps end under 0.7x the loss of predicting 0 on the same query points
    (measured: 2.23 and 1.51 against 4.2, i.e. 0.53x and 0.36x). Without the meta-updates (the random init)
    ten steps end at the zero predictor's loss, 4.22 and 4.14; at K = 10 that is still below one step (4.15),
    so "finite and below one step" alone passes a learner that learned nothing there.

    A short run stands in for the benchmark's 30,000 updates at alpha = 0.01: at alpha = 0.03, 1,600 updates
    sharpen the loss surface as far. Meta-trained through one inner step (the paper's recipe) the median
    sharpness of the K = 5 support losses reaches 2.2 (the paper's recipe after 30,000 updates at 0.01: 2.3)
    and 7 of the 600 tasks blow up, which the strict xfail keeps failing; through five it is 0.6.
    """
    alpha = 0.03
    gen = torch.Generator().manual_seed(3)
    maml = MAML(mse, init_mlp(gen), MAMLConfig(inner_lr=alpha, inner_steps=inner_steps))
    gen = torch.Generator().manual_seed(4)
    for _ in range(1600):
        amplitude, phase = sample_tasks(25, gen)
        maml.step(sample_points(amplitude, phase, 10, gen), sample_points(amplitude, phase, 10, gen), 25)
    theta = maml.theta.detach().expand(600, -1)
    for shots in (5, 10):
        gen = torch.Generator().manual_seed(5)
        amplitude, phase = sample_tasks(600, gen)
        support, query = sample_points(amplitude, phase, shots, gen), sample_points(amplitude, phase, 100, gen)
        losses = losses_after(mse, theta, support, query, alpha, range(11))
        non_finite = sum(int((~torch.isfinite(losses[k])).sum()) for k in range(1, 11))
        assert non_finite == 0, f"K={shots}: {non_finite} non-finite task losses within 10 steps"
        zero = query[1].pow(2).mean()  # the loss of predicting 0 everywhere, about 4.2
        assert losses[10].mean() < 0.7 * zero, f"K={shots}: 10 steps end at {losses[10].mean():.2f}, zero: {zero:.2f}"
        assert losses[10].mean() < losses[1].mean(), f"K={shots}: 10 steps end above one step"


def test_sharpness_is_the_top_eigenvalue_of_the_rate_scaled_hessian():
    """Against eigenvalues computed in full: a quadratic with a known spectrum (scalar and per-parameter
    rates), and one sinusoid network's support loss."""
    spectra = torch.tensor([[1.0, 4.0, 10.0], [0.5, 0.2, 3.0]], dtype=torch.float64)

    def quadratic(params, _data):
        return 0.5 * (spectra * params * params).sum(1)

    params = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sharpness(quadratic, params, None, 0.1, iterations=200),
                               torch.tensor([1.0, 0.3], dtype=torch.float64))
    rates = torch.tensor([2.0, 1.0, 0.01], dtype=torch.float64)  # rate x curvature: [2, 4, 0.1] and [1, .2, .03]
    torch.testing.assert_close(sharpness(quadratic, params, None, rates, iterations=200),
                               torch.tensor([4.0, 1.0], dtype=torch.float64))
    (x, y), _ = _tasks(t=1, k=5)
    theta = init_mlp(torch.Generator().manual_seed(1)).double() * 30  # a scale with curvature to find
    hessian = torch.autograd.functional.hessian(lambda th: mse(th[None], (x.double(), y.double()))[0], theta)
    expected = 0.01 * torch.linalg.eigvalsh(hessian)[-1]
    found = sharpness(mse, theta[None], (x.double(), y.double()), 0.01, iterations=300)
    torch.testing.assert_close(found, expected[None], rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="iterations"):
        sharpness(quadratic, params, None, 0.1, iterations=0)
    with pytest.raises(ValueError, match="1 are negative"):
        sharpness(quadratic, params, None, torch.tensor([0.1, -0.1, 0.1], dtype=torch.float64))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="inner_steps"):
        MAMLConfig(inner_steps=0)
    with pytest.raises(ValueError, match="inner_lr and outer_lr"):
        MAMLConfig(inner_lr=-1)
    with pytest.raises(ValueError, match="flat parameter vector"):
        MAML(mse, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[tasks, parameters\]"):
        adapt(mse, torch.zeros(5), None, 0.1, 1)
    with pytest.raises(ValueError, match="step counts"):
        losses_after(mse, torch.zeros(1, num_params()), None, None, 0.1, [-1])


def test_meta_learned_initialization_is_cached_and_deterministic(micro_preset, tmp_path):
    from llm_repair_gym.lm.model import ParamLayout
    from llm_repair_gym.meta.initialization import MetaInitConfig, load_meta_init, train_union

    config = MetaInitConfig(iterations=3, meta_batch=2, shots=2, query=3)
    built = load_meta_init(micro_preset, seed=1, config=config, cache_dir=tmp_path, progress=False)
    size = ParamLayout.of(micro_preset.model).size
    assert built.theta.shape == built.inner_lr.shape == (size,)
    assert built.manifest["config"]["iterations"] == 3 and built.path.parent == tmp_path
    loaded = load_meta_init(micro_preset, seed=1, config=config, cache_dir=tmp_path, progress=False)
    assert torch.equal(built.theta, loaded.theta) and torch.equal(built.inner_lr, loaded.inner_lr)
    again = load_meta_init(micro_preset, seed=1, config=config, cache_dir=tmp_path, progress=False, rebuild=True)
    assert torch.equal(built.theta, again.theta)  # same seed, same bits
    assert not torch.equal(built.inner_lr, torch.full_like(built.inner_lr, config.inner_lr))  # Meta-SGD learned
    other = load_meta_init(micro_preset, seed=2, config=config, cache_dir=tmp_path, progress=False)
    assert other.path != built.path and not torch.equal(other.theta, built.theta)
    union = train_union(micro_preset, seed=1, config=config, progress=False)
    assert union.shape == (size,) and torch.isfinite(union).all()
    with pytest.raises(ValueError, match="must be >= 1"):
        MetaInitConfig(shots=0)


def test_sinusoid_networks_start_as_in_the_papers_code():
    theta = init_mlp(torch.Generator().manual_seed(0))
    sizes = [n for fan_in, fan_out in ((1, 40), (40, 40), (40, 1)) for n in (fan_in * fan_out, fan_out)]
    weights_and_biases = theta.split(sizes)
    assert all(torch.equal(b, torch.zeros_like(b)) for b in weights_and_biases[1::2])
    weights = torch.cat(weights_and_biases[0::2])
    assert weights.abs().max() <= 0.02 and 0.007 < weights.std() < 0.01


def test_sinusoid_benchmark_reports_every_k_and_its_bar_can_fail(tmp_path):
    from benchmarks.maml_sinusoid import EVAL_STEPS, checks, main

    out = main(["--seeds", "1", "--iterations", "30", "--probe-every", "10", "--eval-tasks", "20",
                "--out-dir", str(tmp_path)])
    names = {f"{stem}.{ext}" for stem, ext in [("maml-sinusoid", "md"), ("maml-sinusoid", "json"),
                                              ("maml-sinusoid", "png"), ("maml-sinusoid-seed1", "json"),
                                              ("maml-sinusoid-seed1", "safetensors")]}
    assert names <= {p.name for p in tmp_path.iterdir()}
    text = (tmp_path / "maml-sinusoid.md").read_text()
    assert "## K = 5" in text and "## K = 10" in text and "maml-5step" in text
    figures = out["runs"][1]["maml-5step"]["figures"][10]
    assert len(figures["mean"]) == len(EVAL_STEPS) and figures["non_finite"] == [0] * len(EVAL_STEPS)
    assert [p["iteration"] for p in out["runs"][1]["maml-1step"]["sharpness_curve"]] == [0, 10, 20, 30]
    assert set(out["bar"][1]) == {"maml-1step", "maml-5step"}

    falling = [3.0, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.18, 0.16, 0.15, 0.14]
    pretrained = {k: {"mean": [3.0] * 11} for k in (5, 10)}

    def bar(mean, non_finite=None):
        row = {"mean": mean, "non_finite": non_finite or [0] * 11}
        return checks({"maml-5step": {5: row, 10: row}, "pretrained": pretrained}, [5, 10])["maml-5step"]

    assert all(bar(falling).values())
    rising = bar(falling[:7] + [0.21] + falling[8:])
    assert [text for text, ok in rising.items() if not ok] == ["K=5: mean non-increasing from 1 to 10 steps",
                                                               "K=10: mean non-increasing from 1 to 10 steps"]
    blown = bar(falling[:10] + [float("inf")], [0] * 10 + [1])
    assert not blown["K=10: every mean finite, no non-finite task"] and not blown["K=10: <= 0.35 after 10 steps"]
    assert not bar(falling[:10] + [0.5])["K=10: <= 0.35 after 10 steps"]
    assert not bar([3.0] + [1.1] * 10)["K=5: pretrained >= 3.0x after 10 steps"]
