"""A small neural-network potential for azobenzene, fitted to GFN1-xTB energies and forces.

:class:`AzobenzeneMLP` maps positions ``(..., 24, 3)`` in nm (atom order of
:mod:`.molecule`) to energies ``(...)`` in kJ/mol, the calling convention of
:mod:`openmm_nnbias.diffsim.potentials` and :class:`~openmm_nnbias.systems.azobenzene.SevenNetEnergy`, so it is a drop-in
``potential=`` for :func:`~openmm_nnbias.recipes.diffsim.azobenzene.azobenzene_setup`.

Model
-----
* Descriptors: the inverse distances ``1/r_ij`` (1/nm) of all ``N(N−1)/2`` atom pairs
  (276 for azobenzene), in a fixed atom order — invariant to translation and rotation
  (and to reflection; the two rings are *not* permutation-symmetrized), normalized with
  stored buffers ``feature_mean`` / ``feature_std``.
* An MLP with smooth activations (SiLU by default; twice differentiable, as the Langevin
  simulator's forces and the partial adjoint's vector–Hessian products need), one output
  scaled by the stored ``energy_std`` plus ``energy_offset`` (kJ/mol).
* A fixed (not trained) short-range repulsion ``ε Σ_pairs (r_rep / r)¹²`` (default
  ε = 1 kJ/mol, r_rep = 0.075 nm: 0.05 kJ/mol and 7 kJ/mol/nm at the shortest bonded
  distance of the data, 0.096 nm; 130 kJ/mol at 0.05 nm), so that an optimizer or a hot
  trajectory that leaves the data cannot collapse atoms into a "hole" of the extrapolated
  MLP; the MLP is fitted to the remainder.
* Forces are ``−∇E`` by autograd; the module is TorchScript-able (``torch.jit.script``).

:func:`fit` trains it on energies and forces (Adam, validation split, early stopping on the
validation loss, best state kept). :meth:`AzobenzeneMLP.save` / :meth:`AzobenzeneMLP.load`
store the state dict (normalization included) and the architecture.

Units: nm, kJ/mol, kJ/mol/nm.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Dict, Optional, Sequence

import torch

logger = logging.getLogger(__name__)

__all__ = ["AzobenzeneMLP", "PRETRAINED_FILE", "pretrained_resource", "fit"]

#: File name of the shipped model under ``openmm_nnbias/systems/azobenzene/data/`` (:meth:`AzobenzeneMLP.pretrained`).
PRETRAINED_FILE = "azobenzene_gfn1_mlp.pt"

def pretrained_resource():
    """The shipped model file as an ``importlib.resources`` traversable (one place names it)."""
    from importlib.resources import files

    return files("openmm_nnbias.systems.azobenzene") / "data" / PRETRAINED_FILE


_ACTIVATIONS = {"silu": torch.nn.SiLU, "softplus": torch.nn.Softplus, "tanh": torch.nn.Tanh}


class AzobenzeneMLP(torch.nn.Module):
    """Inverse-distance MLP potential energy of one molecule (azobenzene by default).

    Parameters
    ----------
    n_atoms : int, optional
        Atoms per molecule (default 24, azobenzene).
    hidden : sequence of int, optional
        Hidden widths (default (128, 64)).
    activation : {"silu", "softplus", "tanh"}, optional
        Smooth activation (default ``"silu"``).
    dtype : torch.dtype, optional
        Parameter dtype (default float64); inputs are cast to it and the energy is returned
        in the input's dtype.
    seed : int, optional
        Seeds the weight initialization (default 0).
    repulsion : float, optional
        ε of the fixed pair repulsion in kJ/mol (default 1; 0 switches it off).
    repulsion_radius : float, optional
        r_rep in nm (default 0.075).

    Raises
    ------
    TypeError
        If ``n_atoms`` is not an int or ``hidden`` is not a sequence of ints.
    ValueError
        If ``n_atoms < 2``, a width is < 1, ``activation`` is unknown, ``dtype`` is not
        float32/float64, ``repulsion < 0`` or ``repulsion_radius <= 0``.

    Examples
    --------
    >>> m = AzobenzeneMLP()
    >>> m(torch.rand(5, 24, 3, dtype=torch.float64)).shape
    torch.Size([5])
    """

    def __init__(self, n_atoms: int = 24, hidden: Sequence[int] = (128, 64), activation: str = "silu",
                 dtype: torch.dtype = torch.float64, seed: int = 0, repulsion: float = 1.0,
                 repulsion_radius: float = 0.075):
        super().__init__()
        if isinstance(n_atoms, bool) or not isinstance(n_atoms, int):
            raise TypeError(f"n_atoms must be an int, got {type(n_atoms).__name__}")
        if n_atoms < 2:
            raise ValueError(f"n_atoms must be >= 2, got {n_atoms}")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or \
                not all(isinstance(h, int) and not isinstance(h, bool) for h in hidden):
            raise TypeError(f"hidden must be a sequence of ints, got {hidden!r}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {tuple(hidden)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        if not (math.isfinite(float(repulsion)) and float(repulsion) >= 0):
            raise ValueError(f"repulsion must be >= 0 (kJ/mol), got {repulsion!r}")
        if not (math.isfinite(float(repulsion_radius)) and float(repulsion_radius) > 0):
            raise ValueError(f"repulsion_radius must be positive (nm), got {repulsion_radius!r}")
        self.n_atoms = int(n_atoms)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = str(activation)
        i, j = torch.triu_indices(self.n_atoms, self.n_atoms, offset=1)
        self.register_buffer("pair_i", i.clone())
        self.register_buffer("pair_j", j.clone())
        n_features = int(i.numel())
        self.register_buffer("feature_mean", torch.zeros(n_features, dtype=dtype))
        self.register_buffer("feature_std", torch.ones(n_features, dtype=dtype))
        self.register_buffer("energy_offset", torch.zeros((), dtype=dtype))
        self.register_buffer("energy_std", torch.ones((), dtype=dtype))
        self.register_buffer("repulsion", torch.tensor(float(repulsion), dtype=dtype))
        self.register_buffer("repulsion_radius", torch.tensor(float(repulsion_radius), dtype=dtype))
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(int(seed))
        layers = []
        width = n_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h, dtype=dtype), _ACTIVATIONS[self.activation]()]
            width = h
        layers.append(torch.nn.Linear(width, 1, dtype=dtype))
        torch.random.set_rng_state(gen_state)
        self.net = torch.nn.Sequential(*layers)

    def inverse_distances(self, positions: torch.Tensor) -> torch.Tensor:
        """``1/r_ij`` (1/nm) ``(B, n_pairs)`` of ``(B, n_atoms, 3)`` positions in nm."""
        d = positions[:, self.pair_i, :] - positions[:, self.pair_j, :]
        return 1.0 / torch.sqrt((d * d).sum(-1))

    def features(self, positions: torch.Tensor) -> torch.Tensor:
        """Normalized inverse distances ``(B, n_pairs)`` of ``(B, n_atoms, 3)`` positions in nm."""
        return (self.inverse_distances(positions) - self.feature_mean) / self.feature_std

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """Energy in kJ/mol of positions ``(..., n_atoms, 3)`` in nm; returns shape ``(...)``."""
        lead = positions.shape[:-2]
        x = positions.reshape(-1, self.n_atoms, 3).to(self.energy_std.dtype)
        inv = self.inverse_distances(x)
        z = (inv - self.feature_mean) / self.feature_std
        e = self.net(z).squeeze(-1) * self.energy_std + self.energy_offset
        e = e + self.repulsion * ((self.repulsion_radius * inv) ** 12).sum(-1)
        return e.to(positions.dtype).reshape(lead)

    @torch.jit.unused
    def set_normalization(self, positions: torch.Tensor, energies: torch.Tensor) -> None:
        """Set the feature mean/std and the energy offset/scale from training data.

        Parameters
        ----------
        positions : torch.Tensor
            ``(M, n_atoms, 3)`` in nm.
        energies : torch.Tensor
            ``(M,)`` in kJ/mol.
        """
        positions, energies, _ = _check_data(positions, energies, None, self.n_atoms)
        dtype = self.energy_std.dtype
        with torch.no_grad():
            self.feature_mean.zero_()
            self.feature_std.fill_(1.0)
            f = self.features(positions.to(dtype))
            self.feature_mean.copy_(f.mean(0))
            self.feature_std.copy_(f.std(0).clamp_min(1e-6))
            e = energies.to(dtype) - self.repulsion * ((self.repulsion_radius * self.inverse_distances(
                positions.to(dtype))) ** 12).sum(-1)
            self.energy_offset.copy_(e.mean())
            self.energy_std.copy_(e.std().clamp_min(1e-6) if e.numel() > 1 else torch.ones((), dtype=dtype))

    @torch.jit.unused
    def save(self, path: str) -> None:
        """Write the architecture and state dict (normalization buffers included) to ``path``."""
        config = dict(n_atoms=self.n_atoms, hidden=list(self.hidden), activation=self.activation,
                      repulsion=float(self.repulsion), repulsion_radius=float(self.repulsion_radius),
                      dtype=str(self.energy_std.dtype).replace("torch.", ""))
        torch.save({"config": config, "state_dict": self.state_dict()}, path)

    @classmethod
    @torch.jit.unused
    def pretrained(cls, dtype: Optional[torch.dtype] = None) -> "AzobenzeneMLP":
        """The model that ships with the package: fitted to GFN1-xTB azobenzene data.

        The file is ``openmm_nnbias/systems/azobenzene/data/azobenzene_gfn1_mlp.pt``; how it was made
        (data, active-learning rounds, validation errors) is in ``data/README.md`` beside it
        and in ``benchmarks/RESULTS.md``. It describes GFN1-xTB's azobenzene (ΔE(cis − trans)
        ≈ 0.1 eV, barriers ≈ 1 eV above cis), not the real molecule's.

        Parameters
        ----------
        dtype : torch.dtype, optional
            Override the stored float64.

        Examples
        --------
        >>> from openmm_nnbias.systems.azobenzene.molecule import azobenzene_positions
        >>> m = AzobenzeneMLP.pretrained()
        >>> de = m(azobenzene_positions("cis")) - m(azobenzene_positions("trans"))
        >>> 0.0 < float(de.detach()) < 30.0  # kJ/mol, at the stored (not re-minimized) structures
        True
        """
        from importlib.resources import as_file

        with as_file(pretrained_resource()) as path:
            return cls.load(str(path), dtype=dtype)

    @classmethod
    @torch.jit.unused
    def load(cls, path: str, dtype: Optional[torch.dtype] = None) -> "AzobenzeneMLP":
        """Read a model written by :meth:`save`; ``dtype`` overrides the stored one (default: stored)."""
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
            raise ValueError(f"path {path!r} does not hold an AzobenzeneMLP written by save()")
        cfg = dict(blob["config"])
        stored = getattr(torch, cfg.pop("dtype", "float64"))
        model = cls(n_atoms=int(cfg["n_atoms"]), hidden=tuple(cfg["hidden"]), activation=cfg["activation"],
                    dtype=stored, repulsion=float(cfg.get("repulsion", 0.0)),
                    repulsion_radius=float(cfg.get("repulsion_radius", 0.075)))
        model.load_state_dict(blob["state_dict"])
        return model.to(dtype) if dtype is not None else model


def _check_data(positions, energies, forces, n_atoms: int):
    for name, v in (("positions", positions), ("energies", energies)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if positions.ndim != 3 or positions.shape[1:] != (n_atoms, 3):
        raise ValueError(f"positions must have shape (M, {n_atoms}, 3) in nm, got {tuple(positions.shape)}")
    if energies.shape != positions.shape[:1]:
        raise ValueError(f"energies must have shape ({positions.shape[0]},) in kJ/mol, got {tuple(energies.shape)}")
    if forces is not None:
        if not isinstance(forces, torch.Tensor):
            raise TypeError(f"forces must be a torch.Tensor or None, got {type(forces).__name__}")
        if forces.shape != positions.shape:
            raise ValueError(f"forces must have the shape of positions {tuple(positions.shape)}, "
                             f"got {tuple(forces.shape)}")
    return positions, energies, forces


def _energy_forces(model, x, create_graph):
    x = x.detach().requires_grad_(True)
    e = model(x)
    (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
    return e, -g


def fit(model: AzobenzeneMLP, positions: torch.Tensor, energies: torch.Tensor, forces: Optional[torch.Tensor] = None,
        *, force_weight: float = 1.0, val_fraction: float = 0.1, epochs: int = 300, batch_size: int = 64,
        lr: float = 1e-3, lr_min: float = 1e-5, patience: int = 40, normalize: bool = True, seed: int = 0,
        verbose: int = 0) -> Dict[str, object]:
    """Fit ``model`` to energies (and forces) with Adam; keeps the state of best validation loss.

    Loss per mini-batch: ``mean((E − E_ref)²) / σ_E² + force_weight · mean((F − F_ref)²) / σ_F²``,
    with σ_E, σ_F the standard deviations of the training energies and force components.
    The learning rate follows a cosine from ``lr`` to ``lr_min`` over ``epochs``.

    Parameters
    ----------
    model : AzobenzeneMLP
        Model to train (in place).
    positions : torch.Tensor
        ``(M, n_atoms, 3)`` in nm.
    energies : torch.Tensor
        ``(M,)`` in kJ/mol.
    forces : torch.Tensor, optional
        ``(M, n_atoms, 3)`` in kJ/mol/nm; None fits energies only.
    force_weight : float, optional
        Weight of the force term (default 1).
    val_fraction : float, optional
        Fraction of the points held out (seeded random split; default 0.1; 0 means none and
        no early stopping).
    epochs, batch_size, patience : int, optional
        Passes over the training set (300), points per step (64), epochs without a better
        validation loss before stopping (40).
    lr, lr_min : float, optional
        Initial and final Adam learning rates (1e-3, 1e-5).
    normalize : bool, optional
        Set the feature and energy normalization from the training split first (default True).
    seed : int, optional
        Seeds the split and the shuffling (default 0).
    verbose : int, optional
        Log (``logging.INFO``, logger ``openmm_nnbias.systems.azobenzene.mlp``) every ``verbose`` epochs (default 0: silent).

    Returns
    -------
    dict
        ``train_loss`` and ``val_loss`` per epoch, ``best_epoch``, ``train_index``,
        ``val_index`` (tensors of point indices) and ``epochs_run``.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`AzobenzeneMLP` or the data are not tensors.
    ValueError
        For mismatched shapes, ``val_fraction`` outside [0, 1), or a non-positive
        ``epochs``, ``batch_size``, ``patience``, ``lr`` or negative ``force_weight``.
    """
    if not isinstance(model, AzobenzeneMLP):
        raise TypeError(f"model must be an AzobenzeneMLP, got {type(model).__name__}")
    positions, energies, forces = _check_data(positions, energies, forces, model.n_atoms)
    _check_fit_settings(val_fraction, epochs, batch_size, patience, lr, force_weight)
    dtype = model.energy_std.dtype
    x_all, e_all = positions.to(dtype), energies.to(dtype)
    f_all = forces.to(dtype) if forces is not None else None
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(x_all.shape[0], generator=gen)
    n_val = int(round(float(val_fraction) * x_all.shape[0]))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    if tr_idx.numel() < 1:
        raise ValueError("no training points left after the validation split")
    if normalize:
        model.set_normalization(x_all[tr_idx], e_all[tr_idx])
    loss_of = _loss_function(model, x_all, e_all, f_all, tr_idx, float(force_weight))
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(epochs), eta_min=float(lr_min))
    history: Dict[str, object] = {"train_loss": [], "val_loss": [], "train_index": tr_idx, "val_index": val_idx}
    best, best_state, best_epoch, wait = math.inf, copy.deepcopy(model.state_dict()), -1, 0
    for epoch in range(int(epochs)):
        train = _train_epoch(opt, loss_of, tr_idx[torch.randperm(tr_idx.numel(), generator=gen)], int(batch_size))
        sched.step()
        history["train_loss"].append(train)
        val = _mean_loss(loss_of, val_idx) if n_val else train
        history["val_loss"].append(val)
        if val < best:
            best, best_epoch, wait = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
        if verbose and (epoch % int(verbose) == 0 or epoch == int(epochs) - 1):
            logger.info("epoch %4d  train %.4e  val %.4e  lr %.2e", epoch, train, val, sched.get_last_lr()[0])
        if n_val and wait >= int(patience):
            break
    model.load_state_dict(best_state)
    history.update(best_epoch=best_epoch, epochs_run=len(history["train_loss"]))
    return history


def _check_fit_settings(val_fraction, epochs, batch_size, patience, lr, force_weight) -> None:
    """ValueError naming the first setting of :func:`fit` out of its range."""
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    if not (math.isfinite(float(lr)) and float(lr) > 0):
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not (math.isfinite(float(force_weight)) and float(force_weight) >= 0):
        raise ValueError(f"force_weight must be >= 0, got {force_weight!r}")


def _loss_function(model, x_all, e_all, f_all, tr_idx, force_weight: float):
    """``loss_of(idx, create_graph)``: the normalized energy (+ force) loss of the points ``idx``."""
    s_e = float(e_all[tr_idx].std()) if tr_idx.numel() > 1 else 1.0
    s_f = float(f_all[tr_idx].std()) if f_all is not None else 1.0
    s_e, s_f = max(s_e, 1e-6), max(s_f, 1e-6)
    use_f = f_all is not None and force_weight > 0

    def loss_of(idx, create_graph):
        x = x_all[idx]
        if use_f:
            e, f = _energy_forces(model, x, create_graph)
            return ((e - e_all[idx]) ** 2).mean() / s_e ** 2 + force_weight * ((f - f_all[idx]) ** 2).mean() / s_f ** 2
        return ((model(x) - e_all[idx]) ** 2).mean() / s_e ** 2

    return loss_of


def _train_epoch(opt, loss_of, order: torch.Tensor, batch_size: int) -> float:
    """One pass of Adam over the training points in ``order``; the mean loss per point."""
    run, count = 0.0, 0
    for k in range(0, order.numel(), batch_size):
        idx = order[k:k + batch_size]
        opt.zero_grad()
        loss = loss_of(idx, True)
        loss.backward()
        opt.step()
        run += float(loss.detach()) * idx.numel()
        count += idx.numel()
    return run / count


def _mean_loss(loss_of, idx: torch.Tensor) -> float:
    """The loss per point over ``idx``, without gradients, in chunks of 512."""
    total = 0.0
    for k in range(0, idx.numel(), 512):
        part = idx[k:k + 512]
        total += float(loss_of(part, False).detach()) * part.numel()
    return total / max(idx.numel(), 1)
