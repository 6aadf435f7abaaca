"""Neural-network bias V(s): CV features (cos/sin, range scaling) followed by an MLP."""

import math
from typing import List, Sequence

import torch

__all__ = ["CVFeatures", "NeuralBias", "mlp_forward", "mlp_value_and_grad", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "elu", "tanh", "softplus", "silu")


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return torch.relu(x)
    if activation == "elu":
        return torch.nn.functional.elu(x)
    if activation == "tanh":
        return torch.tanh(x)
    if activation == "softplus":
        return torch.nn.functional.softplus(x)
    return torch.nn.functional.silu(x)


def _activate_derivative(z: torch.Tensor, a: torch.Tensor, activation: str) -> torch.Tensor:
    """d act(z)/dz given the pre-activation z and the activation a = act(z)."""
    if activation == "relu":
        return torch.sign(a)
    if activation == "elu":
        return torch.where(z > 0, torch.ones_like(z), a + 1.0)
    if activation == "tanh":
        return 1.0 - a * a
    if activation == "softplus":
        return torch.sigmoid(z)
    sig = torch.sigmoid(z)
    return sig * (1.0 + z * (1.0 - sig))


def mlp_value_and_grad(x: torch.Tensor, weights: List[torch.Tensor], biases: List[torch.Tensor],
                       activation: str, weights_t: List[torch.Tensor]):
    """Single input vector ``x`` (F,): the MLP output (scalar) and its gradient dV/dx (F,).

    ``weights_t`` are the transposed weights (views are fine), used by the backward pass.

    Hand-written back-propagation (no autograd graph): a dozen small ops for a 3-layer net,
    which is what makes the TorchForce kernel cheap.
    """
    n = len(weights)
    derivs: List[torch.Tensor] = []
    h = x
    for i in range(n - 1):
        z = torch.addmv(biases[i], weights[i], h)
        h = _activate(z, activation)
        derivs.append(_activate_derivative(z, h, activation))
    value = torch.addmv(biases[n - 1], weights[n - 1], h)
    g = weights[n - 1][0]
    for i in range(n - 2, -1, -1):
        g = torch.mv(weights_t[i], g * derivs[i])
    return value[0], g


def mlp_forward(x: torch.Tensor, weights: List[torch.Tensor], biases: List[torch.Tensor],
                activation: str) -> torch.Tensor:
    """Evaluate an MLP with the given layer weights; linear last layer, output squeezed.

    Shared by the trainable :class:`NeuralBias` and the flat-buffer force module so both
    compute exactly the same function.
    """
    n = len(weights)
    for i in range(n):
        x = torch.nn.functional.linear(x, weights[i], biases[i])
        if i < n - 1:
            x = _activate(x, activation)
    return x.squeeze(-1)


class CVFeatures(torch.nn.Module):
    """Network input features from CV values.

    Periodic CVs enter as ``(cos θ, sin θ)`` with θ = 2π s/period (θ = s for torsions); non-periodic CVs are
    scaled linearly from their declared range [lower, upper] to [−1, 1]. Output order: all cosines,
    all sines, then the scaled non-periodic CVs. Statistics are buffers, so they travel with
    TorchScript.

    Examples
    --------
    >>> import math, torch
    >>> f = CVFeatures([True, False], [-math.pi, 0.0], [math.pi, 2.0])
    >>> f(torch.tensor([[0.0, 1.5]], dtype=torch.float64)).tolist()
    [[1.0, 0.0, 0.5]]
    """

    def __init__(self, periodic: Sequence[bool], lower: Sequence[float], upper: Sequence[float],
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        if not (len(periodic) == len(lower) == len(upper)) or len(periodic) == 0:
            raise ValueError("periodic, lower and upper must be non-empty and of equal length")
        for i, (lo, hi) in enumerate(zip(lower, upper)):
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"CV {i}: declared range [{lo}, {hi}] must be finite with lower < upper")
        lo = torch.tensor(lower, dtype=dtype)
        width = torch.tensor(upper, dtype=dtype) - lo
        per = torch.tensor(periodic, dtype=torch.bool)
        lo = torch.where(per, torch.zeros_like(lo), lo)
        scale = torch.where(per, 2 * math.pi / width, 2.0 / width)
        shift = torch.where(per, torch.zeros_like(lo), torch.full_like(lo, -1.0))
        self.register_buffer("lower", lo)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.register_buffer("periodic_index", torch.nonzero(per).flatten())
        self.register_buffer("linear_index", torch.nonzero(~per).flatten())
        self.n_periodic = int(per.sum())
        self.n_linear = len(periodic) - self.n_periodic
        self.n_features = 2 * self.n_periodic + self.n_linear

    @torch.jit.export
    def vjp(self, s: torch.Tensor, grad_features: torch.Tensor) -> torch.Tensor:
        """dV/ds from dV/d(features), single frame ``s`` (n_cvs,)."""
        z = (s - self.lower) * self.scale + self.shift
        n = self.n_periodic
        if self.n_linear == 0:
            return (torch.cos(z) * grad_features[n:] - torch.sin(z) * grad_features[:n]) * self.scale
        if n == 0:
            return grad_features * self.scale
        zp = z.index_select(0, self.periodic_index)
        gp = (torch.cos(zp) * grad_features[n:2 * n] - torch.sin(zp) * grad_features[:n]) \
            * self.scale.index_select(0, self.periodic_index)
        gl = grad_features[2 * n:] * self.scale.index_select(0, self.linear_index)
        out = torch.zeros_like(s).index_copy(0, self.periodic_index, gp)
        return out.index_copy(0, self.linear_index, gl)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        z = (s - self.lower) * self.scale + self.shift
        if self.n_linear == 0:
            return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)
        if self.n_periodic == 0:
            return z
        zp = z.index_select(-1, self.periodic_index)
        return torch.cat([torch.cos(zp), torch.sin(zp), z.index_select(-1, self.linear_index)], dim=-1)


class NeuralBias(torch.nn.Module):
    """Bias potential V(s) in kJ/mol as an MLP over CV features (Deep-VES, Eq. 9).

    Parameters
    ----------
    periodic, lower, upper : sequences
        Per-CV periodicity and declared range (rad or nm); usually taken from a
        :class:`~openmm_nnbias.cvs.CVSet` via :meth:`from_cvs`.
    hidden : sequence of int
        Hidden layer widths (default ``(48, 24, 12)`` as in the paper).
    activation : str
        One of ``"relu"`` (default, as in the paper's examples), ``"elu"``, ``"tanh"``,
        ``"softplus"``, ``"silu"``.
    dtype : torch.dtype
        Parameter dtype (float64 by default).
    seed : int, optional
        Seed for the weight initialization.
    zero_output : bool
        Start from V ≡ 0 (output layer weights and bias zero), the usual Deep-VES start.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.cvs import CVSet, Torsion
    >>> cvs = CVSet([Torsion([4, 6, 8, 14], "phi"), Torsion([6, 8, 14, 16], "psi")])
    >>> bias = NeuralBias.from_cvs(cvs, seed=0)
    >>> bias(torch.zeros(5, 2, dtype=torch.float64)).shape
    torch.Size([5])
    >>> bias.n_parameters
    1729
    """

    __jit_unused_properties__ = ["n_parameters"]

    def __init__(self, periodic: Sequence[bool], lower: Sequence[float], upper: Sequence[float],
                 hidden: Sequence[int] = (48, 24, 12), activation: str = "relu",
                 dtype: torch.dtype = torch.float64, seed: int = None, zero_output: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        hidden = [int(h) for h in hidden]
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer widths must be positive, got {hidden}")
        self.features = CVFeatures(periodic, lower, upper, dtype=dtype)
        self.periodic = [bool(p) for p in periodic]
        self.lower = [float(x) for x in lower]
        self.upper = [float(x) for x in upper]
        self.hidden = hidden
        self.activation = activation
        self.n_cvs = len(self.periodic)
        widths = [self.features.n_features] + hidden + [1]
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layer = torch.nn.Linear(n_in, n_out, dtype=dtype)
            bound = 1.0 / math.sqrt(n_in)
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
            layers.append(layer)
        if zero_output:
            with torch.no_grad():
                layers[-1].weight.zero_()
                layers[-1].bias.zero_()
        self.layers = torch.nn.ModuleList(layers)

    @classmethod
    def from_cvs(cls, cvs, **kwargs) -> "NeuralBias":
        """Build a bias whose inputs match a :class:`~openmm_nnbias.cvs.CVSet`."""
        return cls(cvs.periodic, cvs.lower, cvs.upper, **kwargs)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config(self) -> dict:
        """Constructor arguments (JSON-serializable), for checkpoints and export."""
        return {"periodic": self.periodic, "lower": self.lower, "upper": self.upper,
                "hidden": self.hidden, "activation": self.activation,
                "dtype": str(self.layers[0].weight.dtype).replace("torch.", "")}

    def check_finite(self) -> None:
        """Raise ValueError if any weight is NaN or infinite."""
        for name, p in self.named_parameters():
            if not torch.isfinite(p).all():
                raise ValueError(f"bias parameter {name!r} contains non-finite values (NaN or inf)")

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x = self.features(s)
        weights = [layer.weight for layer in self.layers]
        biases = [layer.bias for layer in self.layers]
        return mlp_forward(x, weights, biases, self.activation)
