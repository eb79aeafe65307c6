"""tune_noisier2noise_alpha: the alpha of the Noisier2Noise correction chosen on validation pairs.

(tune_refinement is tested in test_inference.py.)
"""

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer

from medden.inference import noisier2noise_correction, tune_noisier2noise_alpha
from medden.metrics.image_quality import psnr

ALPHAS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _smoother(mix: float) -> torch.nn.Module:
    """``(1 - mix) * x + mix * (5 x 5 box blur of x)``: the more it smooths, the larger the best alpha."""
    net = torch.nn.Conv2d(1, 1, 5, padding=2, bias=False).eval()
    with torch.no_grad():
        net.weight.fill_(mix / 25)
        net.weight[0, 0, 2, 2] += 1 - mix
    return net


def _pairs(seed=0, sigma=0.1):
    rng, ramp = np.random.default_rng(seed), torch.linspace(0, 1, 32)
    cleans = [(ramp[None, :] * ramp[:, None])[None, None] * (k + 1) / 3 for k in range(3)]
    return [(c + sigma * torch.as_tensor(rng.standard_normal(c.shape), dtype=torch.float32), c) for c in cleans]


def _reference(net, pairs, alphas, inferer=None):
    """The loop the benchmark scripts ran before: mean PSNR per alpha, the first best wins."""
    with torch.no_grad():
        preds = [inferer(n, net) if inferer else net(n) for n, _ in pairs]
    scores = {a: np.mean([psnr(noisier2noise_correction(p, n, a), c, 1.0).item() for p, (n, c) in zip(preds, pairs)])
              for a in alphas}
    return max(scores, key=scores.get)


@pytest.mark.parametrize("mix, expected", [(0.2, 0.5), (0.4, 1.0), (0.6, 2.0), (0.8, 4.0), (0.95, 8.0)])
def test_chooses_the_alpha_of_the_reference_loop(mix, expected):
    net, pairs = _smoother(mix), _pairs()
    assert tune_noisier2noise_alpha(net, pairs, alphas=ALPHAS) == _reference(net, pairs, ALPHAS) == expected


def test_runs_the_network_through_the_base_inferer_and_reads_dicts():
    net, pairs = _smoother(0.8), _pairs(1)
    window = SlidingWindowInferer((16, 16), sw_batch_size=1, padding_mode="replicate")
    chosen = tune_noisier2noise_alpha(net, pairs, alphas=ALPHAS[:4], base_inferer=window)
    assert chosen == _reference(net, pairs, ALPHAS[:4], window)
    as_dicts = [{"noisy": n, "gt": c} for n, c in pairs]
    assert tune_noisier2noise_alpha(net, as_dicts, alphas=ALPHAS, input_key="noisy", clean_key="gt") == \
        tune_noisier2noise_alpha(net, pairs, alphas=ALPHAS)


def test_ties_go_to_the_earlier_alpha():
    noisy = torch.arange(16.0).reshape(1, 1, 4, 4)  # integers: correction(y, y, alpha) = y exactly
    pairs = [(noisy, noisy + 1.0)]
    assert tune_noisier2noise_alpha(torch.nn.Identity(), pairs, alphas=(2.0, 1.0, 4.0), data_range=16.0) == 2.0


@pytest.mark.parametrize("kwargs, error, match", [
    ({"alphas": ()}, ValueError, "alphas is empty"),
    ({"alphas": (1.0, 0.0)}, ValueError, "alpha"),
    ({"data": []}, ValueError, "no \\(noisy, clean\\) pairs"),
    ({"metric": "mse"}, ValueError, "metric"),
    ({"data": [1]}, TypeError, "pair or a dict"),
])
def test_errors_name_the_argument(kwargs, error, match):
    arguments = {"network": _smoother(0.5), "data": _pairs(), **kwargs}
    with pytest.raises(error, match=match):
        tune_noisier2noise_alpha(**arguments)
