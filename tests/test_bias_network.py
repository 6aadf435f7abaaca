"""NeuralBias: features, TorchScript equality and save/load, export round trip."""

import io
import math

import pytest
import torch

from openmm_nnbias.bias import BiasEnergy, CVFeatures, NeuralBias, export_bias
from openmm_nnbias.cvs import CVSet, Distance, Torsion


def test_features_periodic_and_linear():
    f = CVFeatures([True, False, True], [-math.pi, 0.2, -math.pi], [math.pi, 1.2, math.pi])
    s = torch.tensor([[0.5, 0.2, -1.0], [math.pi, 1.2, 2.0]], dtype=torch.float64)
    out = f(s)
    expected = torch.tensor([[math.cos(0.5), math.cos(-1.0), math.sin(0.5), math.sin(-1.0), -1.0],
                             [math.cos(math.pi), math.cos(2.0), math.sin(math.pi), math.sin(2.0), 1.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    # periodicity: s and s + 2π give identical features
    torch.testing.assert_close(f(s + torch.tensor([2 * math.pi, 0, 2 * math.pi], dtype=torch.float64)), out, rtol=0, atol=1e-12)


def test_default_architecture_and_start_at_zero():
    bias = NeuralBias([True, True], [-math.pi] * 2, [math.pi] * 2)
    assert bias.hidden == [48, 24, 12] and bias.activation == "relu"
    assert bias.n_parameters == 4 * 48 + 48 + 48 * 24 + 24 + 24 * 12 + 12 + 12 + 1
    assert torch.equal(bias(torch.randn(7, 2, dtype=torch.float64)), torch.zeros(7, dtype=torch.float64))


@pytest.mark.parametrize("activation", ["relu", "elu", "tanh", "softplus", "silu"])
def test_scripted_equals_eager_and_survives_save_load(activation):
    bias = NeuralBias([True, False], [-math.pi, 0.0], [math.pi, 2.0], hidden=(8, 5),
                      activation=activation, seed=4, zero_output=False)
    s = torch.rand(13, 2, dtype=torch.float64) * 2
    scripted = torch.jit.script(bias)
    torch.testing.assert_close(scripted(s), bias(s), rtol=0, atol=1e-14)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    torch.testing.assert_close(torch.jit.load(buf)(s), bias(s), rtol=0, atol=1e-14)


def test_seed_reproducible_and_config():
    a = NeuralBias([True], [-math.pi], [math.pi], seed=7, zero_output=False)
    b = NeuralBias(**{k: v for k, v in a.config().items() if k != "dtype"}, seed=7, zero_output=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_export_bias_file_roundtrip(tmp_path, dipeptide_frames):
    cvs = CVSet([Torsion([4, 6, 8, 14], "phi"), Distance([1, 18], 0.0, 1.5, names="d")])
    bias = NeuralBias.from_cvs(cvs, seed=2, zero_output=False)
    path = tmp_path / "bias.pt"
    export_bias(cvs, bias, str(path))
    loaded = torch.jit.load(str(path))
    x = torch.tensor(dipeptide_frames, dtype=torch.float64)
    expected = bias(cvs(x)).detach()
    torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(loaded.cv_values(x), cvs(x))
    torch.testing.assert_close(loaded.bias_from_cvs(cvs(x)), expected, rtol=0, atol=1e-12)
    assert loaded.cv_names == ["phi", "d"]
    assert not any(p.name.startswith(".tmp_") for p in tmp_path.iterdir())  # atomic write left nothing


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="unknown activation"):
        NeuralBias([True], [-math.pi], [math.pi], activation="sigmoidish")
    with pytest.raises(ValueError, match="positive"):
        NeuralBias([True], [-math.pi], [math.pi], hidden=(0,))
    with pytest.raises(ValueError, match="lower < upper"):
        NeuralBias([False], [1.0], [1.0])
    bias = NeuralBias([True], [-math.pi], [math.pi])
    with torch.no_grad():
        bias.layers[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        bias.check_finite()
