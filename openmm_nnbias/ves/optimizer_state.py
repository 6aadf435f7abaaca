"""Checkpoints of :class:`~openmm_nnbias.ves.DeepVESOptimizer`: its state as plain data and back."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["OptimizerCheckpoint"]

_FORMAT = "openmm_nnbias.ves.DeepVESOptimizer"


class OptimizerCheckpoint:
    """``state_dict`` / ``load_state_dict`` of the optimizer (a mixin of DeepVESOptimizer).

    The state holds tensors, numbers, strings, lists and dicts only, so that it loads with
    ``torch.load(weights_only=True)``.
    """

    def _config(self) -> dict[str, Any]:
        return {
            "kT": self.kT,
            "target": self.target_kind,
            "grid": None if self.grid is None else {
                "lower": list(self.grid.lower_list), "upper": list(self.grid.upper_list),
                "bins": list(self.grid.bins_list), "periodic": list(self.grid.periodic_list),
            },
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact restart, as an independent deep copy.

        Keys: ``format``, ``version``, ``config`` (kT, target kind, grid), ``iteration``,
        ``n_updates``, ``bias`` (``bias.state_dict()``), ``adam``, ``target``, ``kl_monitor``,
        ``schedule``. Save it with ``torch.save``; it is safe to keep in memory while the
        optimiser goes on.
        """
        return {
            "format": _FORMAT,
            "version": 1,
            "config": self._config(),
            "iteration": self.iteration,
            "n_updates": self.n_updates,
            "bias": copy.deepcopy(self.bias.state_dict()),
            "adam": copy.deepcopy(self.adam.state_dict()),
            "target": self.target.state_dict(),
            "kl_monitor": self.kl_monitor.state_dict(),
            "schedule": self.schedule.state_dict(),
            "recrossing": None if self.recrossing is None else self.recrossing.state_dict(),
            "fes_average": None if self.fes_average is None else self.fes_average.state_dict(),
            "fes_window": None if self.fes_window is None else self.fes_window.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (bias weights included) for bit-identical continuation.

        Raises
        ------
        ValueError
            If the state is not a DeepVESOptimizer state or its kT, target kind or grid differ.
        """
        if state.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} state (format={state.get('format')!r})")
        if state.get("version") != 1:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        mine = self._config()
        for key, value in mine.items():
            if state["config"].get(key) != value:
                raise ValueError(
                    f"state has {key}={state['config'].get(key)!r}, this optimizer has {value!r}"
                )
        self.bias.load_state_dict(copy.deepcopy(state["bias"]))
        self.evaluator.invalidate()
        self.adam.load_state_dict(copy.deepcopy(state["adam"]))
        self.target.load_state_dict(state["target"])
        self.kl_monitor.load_state_dict(state["kl_monitor"])
        self.schedule.load_state_dict(state["schedule"])
        if self.recrossing is not None:
            self.recrossing.load_state_dict(state.get("recrossing"))
        if self.fes_average is not None:
            self.fes_average.load_state_dict(state.get("fes_average"))
        if self.fes_window is not None:
            self.fes_window.load_state_dict(state.get("fes_window"))
        self.iteration = int(state["iteration"])
        self.n_updates = int(state["n_updates"])
