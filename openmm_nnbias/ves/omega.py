"""The VES functional Ω[V] (Eq. 3), its stochastic-gradient loss (Eq. 10) and c(t).

Notation (Bonati, Zhang & Parrinello, PNAS 2019): β = 1/kT with kT in kJ/mol, V(s) the bias
in kJ/mol, F(s) the free energy in kJ/mol, p(s) the target distribution.
"""

from __future__ import annotations

import math

import torch

__all__ = ["evaluate_bias", "omega_loss", "omega_loss_from_values", "omega_functional", "bias_normalization"]


def evaluate_bias(bias: torch.nn.Module, cv_values: torch.Tensor) -> torch.Tensor:
    """Evaluate ``bias`` on CV values and return energies of shape ``(B,)`` (kJ/mol).

    ``cv_values`` is moved to the device and dtype of the bias parameters (or buffers).
    Outputs of shape ``(B, 1)`` are accepted and flattened.

    Raises
    ------
    ValueError
        If ``cv_values`` is not 2-D or the output does not hold one value per row.
    """
    cv_values = torch.as_tensor(cv_values)
    if cv_values.ndim != 2:
        raise ValueError(f"CV values must have shape (B, n_cv), got {tuple(cv_values.shape)}")
    ref = next(iter(bias.parameters()), None)
    if ref is None:
        ref = next(iter(bias.buffers()), None)
    if ref is not None:
        cv_values = cv_values.to(device=ref.device, dtype=ref.dtype)
    out = bias(cv_values)
    if out.numel() != cv_values.shape[0] or (out.ndim > 1 and out.shape[0] != cv_values.shape[0]):
        raise ValueError(
            f"bias must map (B, n_cv) to (B,) energies; got output shape {tuple(out.shape)} "
            f"for B = {cv_values.shape[0]}"
        )
    return out.reshape(-1)


def _normalised(weights: torch.Tensor, n: int, name: str, like: torch.Tensor) -> torch.Tensor:
    weights = torch.as_tensor(weights).to(device=like.device, dtype=like.dtype).reshape(-1)
    if weights.numel() != n:
        raise ValueError(f"{name} must have {n} entries, got {weights.numel()}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    total = weights.sum()
    if not total > 0:
        raise ValueError(f"{name} must have a positive sum")
    return weights / total


def omega_loss(
    bias: torch.nn.Module,
    samples: torch.Tensor,
    target_points: torch.Tensor,
    target_probabilities: torch.Tensor,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Surrogate loss whose parameter gradient is Eq. 10.

    ``L(w) = −⟨V(s_t)⟩_samples + Σ_i p_i V(s_i)``, with the samples held fixed, so that
    ``∂L/∂w = −⟨∂V/∂w⟩_V + ⟨∂V/∂w⟩_p`` (Eq. 10). ``L`` is *not* Ω; it differs from Ω by a
    w-dependent term whose gradient vanishes in expectation (the samples' dependence on V).

    Parameters
    ----------
    bias : torch.nn.Module
        Maps CVs ``(B, n_cv)`` to bias energies ``(B,)`` in kJ/mol.
    samples : torch.Tensor
        CV values sampled in the biased ensemble, ``(N, n_cv)``.
    target_points : torch.Tensor
        Points of the target quadrature ``(M, n_cv)``: grid points, or Monte Carlo samples of
        p (then pass equal probabilities).
    target_probabilities : torch.Tensor
        Weights p_i ``(M,)``, normalised inside (they need not sum to 1).
    sample_weights : torch.Tensor, optional
        Non-negative weights ``(N,)`` for the biased average (normalised inside); default
        plain mean. With ``samples = grid points`` and weights ``P_V`` the gradient is the
        exact gradient of Ω on the grid (see :func:`omega_functional`).

    Returns
    -------
    torch.Tensor
        Scalar loss in kJ/mol, in the bias's dtype, attached to the autograd graph.

    Raises
    ------
    ValueError
        On empty inputs, mismatched shapes, or invalid weights.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.ves import CVGrid
    >>> from openmm_nnbias.ves.omega import omega_loss
    >>> grid = CVGrid([-3.0], [3.0], [50], [False])
    >>> bias = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
    ...                            torch.nn.Flatten(0)).double()
    >>> p = torch.full((grid.n_points,), 1.0 / grid.n_points, dtype=torch.float64)
    >>> loss = omega_loss(bias, torch.randn(500, 1, dtype=torch.float64), grid.points, p)
    >>> loss.backward()  # parameter .grad now holds Eq. 10
    """
    samples = torch.as_tensor(samples)
    target_points = torch.as_tensor(target_points)
    if samples.ndim != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (N, n_cv) with N > 0, got {tuple(samples.shape)}")
    if target_points.ndim != 2 or target_points.shape[1] != samples.shape[1]:
        raise ValueError(
            f"target_points must have shape (M, {samples.shape[1]}), got {tuple(target_points.shape)}"
        )
    return omega_loss_from_values(evaluate_bias(bias, samples), evaluate_bias(bias, target_points),
                                  target_probabilities, sample_weights)


def omega_loss_from_values(v_samples: torch.Tensor, v_target: torch.Tensor, target_probabilities: torch.Tensor,
                           sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`omega_loss` from bias values already evaluated: ``V(samples)`` ``(N,)`` and ``V(target points)``
    ``(M,)`` (kJ/mol, attached to a graph for the gradient); weights as in :func:`omega_loss`."""
    p = _normalised(target_probabilities, v_target.numel(), "target_probabilities", v_target)
    if sample_weights is None:
        biased_average = v_samples.mean()
    else:
        w = _normalised(sample_weights, v_samples.numel(), "sample_weights", v_samples)
        biased_average = (w * v_samples).sum()
    return -biased_average + (p * v_target).sum()


def omega_functional(
    bias: torch.nn.Module,
    grid_points: torch.Tensor,
    grid_cell_volume: float,
    free_energy_on_grid: torch.Tensor,
    target_probabilities: torch.Tensor,
    kT: float,
) -> torch.Tensor:
    """The VES functional Ω[V] of Eq. 3 by quadrature on a grid (kJ/mol).

    ``Ω = kT ln[Σ_i e^{−β(F_i+V_i)} ΔV / Σ_i e^{−βF_i} ΔV] + Σ_i p_i V_i`` with p normalised
    to sum 1 and log-sum-exp for stability. It equals
    ``kT [D_KL(p‖P_V) − D_KL(p‖P)]`` on the grid; its exact gradient is Eq. 10 with the
    biased average taken over ``P_V ∝ e^{−β(F+V)}`` on the grid. Used as the test oracle.

    Parameters
    ----------
    bias : torch.nn.Module
        Bias ``(B, n_cv) -> (B,)`` in kJ/mol.
    grid_points : torch.Tensor
        Quadrature points ``(M, n_cv)``.
    grid_cell_volume : float
        Volume ΔV of one cell (> 0; it cancels in the ratio, kept for clarity).
    free_energy_on_grid : torch.Tensor
        F(s_i) in kJ/mol, ``(M,)``.
    target_probabilities : torch.Tensor
        p_i ``(M,)``, normalised inside.
    kT : float
        Thermal energy in kJ/mol (> 0).

    Returns
    -------
    torch.Tensor
        Scalar Ω in kJ/mol, differentiable w.r.t. the bias parameters.
    """
    kT = float(kT)
    if not kT > 0:
        raise ValueError(f"kT must be > 0 (kJ/mol), got {kT}")
    if not float(grid_cell_volume) > 0:
        raise ValueError(f"grid_cell_volume must be > 0, got {grid_cell_volume}")
    v = evaluate_bias(bias, torch.as_tensor(grid_points))
    f = torch.as_tensor(free_energy_on_grid).to(device=v.device, dtype=v.dtype).reshape(-1)
    if f.numel() != v.numel():
        raise ValueError(f"free_energy_on_grid must have {v.numel()} entries, got {f.numel()}")
    p = _normalised(target_probabilities, v.numel(), "target_probabilities", v)
    log_dv = math.log(float(grid_cell_volume))
    log_z_biased = torch.logsumexp(-(f + v) / kT, dim=0) + log_dv
    log_z = torch.logsumexp(-f / kT, dim=0) + log_dv
    return kT * (log_z_biased - log_z) + (p * v).sum()


def bias_normalization(
    bias_values_on_grid: torch.Tensor, target_probabilities: torch.Tensor, kT: float
) -> float:
    """Normalisation constant c(t) of the bias (kJ/mol).

    ``c(t) = kT ln[Σ_i p_i e^{βV_i} / Σ_i p_i]`` (log-sum-exp); ``V − c(t)`` is the "rbias"
    used to reweight frames sampled while the bias changes.

    Parameters
    ----------
    bias_values_on_grid : torch.Tensor
        V(s_i) in kJ/mol, ``(M,)``.
    target_probabilities : torch.Tensor
        p_i ``(M,)`` (non-negative, positive sum; zeros allowed).
    kT : float
        Thermal energy in kJ/mol (> 0).

    Returns
    -------
    float
        c(t) in kJ/mol.
    """
    kT = float(kT)
    if not kT > 0:
        raise ValueError(f"kT must be > 0 (kJ/mol), got {kT}")
    v = torch.as_tensor(bias_values_on_grid).detach().to(torch.float64).reshape(-1)
    p = torch.as_tensor(target_probabilities).detach().to(device=v.device, dtype=torch.float64)
    p = p.reshape(-1)
    if p.numel() != v.numel():
        raise ValueError(f"target_probabilities must have {v.numel()} entries, got {p.numel()}")
    if (p < 0).any() or not p.sum() > 0:
        raise ValueError("target_probabilities must be non-negative with a positive sum")
    log_num = torch.logsumexp(v / kT + torch.log(p), dim=0)
    return float(kT * (log_num - torch.log(p.sum())))
