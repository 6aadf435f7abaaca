"""Row-per-record text outputs of the Deep-VES updater: ``colvar`` and ``ves.log``.

Both are PLUMED-style tables (``#! FIELDS`` header, one row per sample / iteration), appended
during the run and truncated back to the checkpoint on restart, so that a restarted run's files
equal those of an uninterrupted run. A fresh run (no checkpoint loaded before its first step) in
a folder that holds a previous run's files first moves them aside, PLUMED-style, to
``bck.<n>.<name>``: nothing is overwritten or appended to.
"""

import glob
import io
import math
import os
import tempfile
import warnings

import numpy as np
import torch

from .._io import truncate_rows
from ..io import domain_lines, units_lines
from .reweight import accumulate_log_weights

__all__ = ["UpdaterFiles", "BEST_WINDOW", "BEST_WINDOW_RESOLUTION", "REWEIGHT_BELOW"]

#: ``fes.dat`` reweights the frames drawn after this fraction of the run so far (1/2: the last half).
BEST_WINDOW = 0.5
#: ... its start exact to this fraction of the run's length (older blocks of frames are merged, so that the
#: state of a run of any length holds at most about 1/0.01 = 100 blocks plus the newest).
BEST_WINDOW_RESOLUTION = 0.01
#: ``fes.dat`` holds Eq. 4 averaged over the last quarter of the iterations while the learning rate is above this
#: fraction of its initial value (e^-3: three decay times into the decay phase), the reweighted frames after. On the
#: alanine-dipeptide race (6 runs) the reweighted estimate becomes the better one at lr/lr0 = 0.045-0.051.
REWEIGHT_BELOW = math.exp(-3.0)


class UpdaterFiles:
    """Mixin of :class:`~openmm_nnbias.ves.DeepVESUpdater`: its records, files and FES getters.

    Needs ``cvs``, ``out``, ``colvarStride``, ``grid``, ``force``, ``kT``, ``optimizer`` and ``flush``.
    """

    # ----------------------------------------------------------------- records of finished steps
    def _record(self, record, iteration: int):
        """Colvar rows and reweighting of one iteration's samples (when its step finishes)."""
        windowed = getattr(self, "_windowed", None)
        if windowed is not None and record.v is not None and bool(torch.isfinite(record.s).all()):
            t0 = float(record.times[0])
            windowed.add(iteration, t0, self.grid.index(record.s.to(self.grid.device)).cpu(),
                         (record.v - record.c) / self.kT)
            # fes.dat never looks back further; old blocks merged to 1 % of the run: bounded memory over long runs
            windowed.prune(windowed.origin + BEST_WINDOW * (t0 - windowed.origin), t0, BEST_WINDOW_RESOLUTION)
        if record.reweight:
            self._rw_logsum = accumulate_log_weights(
                self._rw_logsum, self.grid.index(record.s.to(self.grid.device)).cpu(), record.v / self.kT,
                self.grid.n_points)
            self._rw_count += len(record.v)
        if self.out is not None:
            self._write_colvar(record)

    def _write_colvar(self, record):
        """Rows of the samples at MD steps that are multiples of ``colvarStride`` (as PLUMED's STRIDE)."""
        keep = record.steps % self.colvarStride == 0
        v = record.v.numpy()[keep]
        data = np.column_stack([record.times[keep], record.s.numpy()[keep], v, v - record.c])
        buf = io.StringIO()
        np.savetxt(buf, data, fmt="%.6f")
        with open(os.path.join(self.out, self._colvar_name()), "a") as fh:
            fh.write(buf.getvalue())

    # ----------------------------------------------------------------- results
    def _need_grid(self, what: str) -> None:
        if self.grid is None:
            raise ValueError(f"{what} needs a grid target; this run's Monte Carlo target has none "
                             "(reweight its colvar: openmm-nnbias reweight RUN, or analysis.reweight_run)")

    def getFreeEnergyFromBias(self) -> np.ndarray:
        """F(s) = −V − kT ln p on the grid (Eq. 4), kJ/mol, min 0, shape ``grid.shape``."""
        self._need_grid("getFreeEnergyFromBias")
        self.flush()
        return self.optimizer.fes_from_bias().reshape(self.grid.shape).cpu().numpy()

    def getAveragedFreeEnergyFromBias(self):
        """Eq. 4 averaged uniformly over the decay phase (kJ/mol, min 0); None before the decay.

        Less noisy than :meth:`getFreeEnergyFromBias` at the freeze, see :mod:`~openmm_nnbias.ves.averaging`.
        """
        self._need_grid("getAveragedFreeEnergyFromBias")
        self.flush()
        f = self.optimizer.averaged_fes_from_bias()
        return None if f is None else f.reshape(self.grid.shape).numpy()

    def getReweightedFreeEnergy(self):
        """Reweighted F(s) from frames sampled with the frozen bias (Eq. 11), kJ/mol; None before."""
        self._need_grid("getReweightedFreeEnergy")
        self._finish_pending()  # the samples of a pending asynchronous step are recorded when it finishes
        if self._rw_logsum is None:
            return None
        f = -self.kT * self._rw_logsum
        return (f - f[torch.isfinite(f)].min()).reshape(self.grid.shape).numpy()

    def getFreeEnergyEstimator(self):
        """Which estimate :meth:`getFreeEnergy` gives now: ``"bias-window"``, ``"reweighted"`` or None (none yet).

        ``"bias-window"`` (Eq. 4 averaged over the last quarter of the iterations,
        :class:`~openmm_nnbias.ves.averaging.WindowedFES`) while the learning rate is above
        :data:`REWEIGHT_BELOW` of its initial value: a fast-moving bias gives a poor reweighting, while
        the average of the recent biases is already close. ``"reweighted"`` once it has decayed below
        (or is frozen), when the reweighted frames become the more accurate estimate.
        """
        self._need_grid("getFreeEnergyEstimator")
        self._finish_pending()
        self.flush()
        return self._best_estimator()

    def _best_estimator(self):
        """:meth:`getFreeEnergyEstimator` of an up-to-date updater (pending step finished, learner synced)."""
        schedule = self.optimizer.schedule
        windowed = getattr(self, "_windowed", None)
        has_rw = windowed is not None and not windowed.empty
        has_eq4 = self.optimizer.fes_window is not None and self.optimizer.fes_window.count > 0
        if has_eq4 and (schedule.lr > REWEIGHT_BELOW * schedule.lr0 or not has_rw):
            return "bias-window"
        return "reweighted" if has_rw else None

    def getFreeEnergy(self, estimator: str | None = None):
        """The run's best FES estimate now (kJ/mol, min 0, unsampled bins +inf), written as ``fes.dat``.

        While the bias learns fast (learning rate above :data:`REWEIGHT_BELOW` of its initial value):
        Eq. 4 (F = −V − kT ln p) averaged uniformly over the iterations of the last quarter of the run
        so far, which removes the noise of the stochastic iterate and forgets the early biases. After:
        the frames reweighted with exp(β(V − c(t))), the bias and c(t) in force when each was drawn,
        over the last half of the run so far (in blocks of ``fesInterval`` iterations, merged when
        older: the window's start is exact to 1 % of t; see :mod:`~openmm_nnbias.ves.running_fes`).
        :meth:`getFreeEnergyEstimator` says which; ``fes.dat`` says it in its header
        (``#! SET estimator``).

        Parameters
        ----------
        estimator : {None, "bias-window", "reweighted"}
            None: the best one now; otherwise that one (None if it has nothing yet).

        Returns
        -------
        numpy.ndarray or None
            Shape ``grid.shape``; None before the first iteration.
        """
        if estimator is not None and not isinstance(estimator, str):
            raise TypeError(f"estimator must be a str or None, got {type(estimator).__name__}")
        if estimator not in (None, "bias-window", "reweighted"):
            raise ValueError(f"estimator must be None, 'bias-window' or 'reweighted', got {estimator!r}")
        self._need_grid("getFreeEnergy")
        self._finish_pending()
        self.flush()
        return self._estimate(estimator or self._best_estimator())

    def _estimate(self, which):
        """The FES of the estimator ``which`` ("bias-window", "reweighted" or None) of an up-to-date updater."""
        if which == "bias-window":
            f = self.optimizer.windowed_fes_from_bias()
            return None if f is None else f.reshape(self.grid.shape).numpy()
        windowed = getattr(self, "_windowed", None)
        if which is None or windowed is None or windowed.empty:
            return None
        now = self.history[-1]["time_ps"] if self.history else windowed.starts[-1]
        f = windowed.fes(self.kT, since=windowed.origin + BEST_WINDOW * (now - windowed.origin))
        return None if f is None else f.reshape(self.grid.shape).numpy()

    def gridAxes(self):
        """Bin centres of each CV (rad, nm)."""
        self._need_grid("gridAxes")
        return [torch.unique(self.grid.points[:, j].cpu()).numpy() for j in range(self.grid.n_cv)]

    # ----------------------------------------------------------------- files

    def _prepare_out(self, out):
        """ValueError unless ``out`` can be created or written; creates nothing (the first report makes the folder)."""
        existing = os.path.abspath(out)
        while not os.path.exists(existing):  # the nearest existing ancestor holds the folder to be made
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise ValueError(f"output folder {out!r} is not writable: {existing!r} is a file, not a folder")
        try:
            probe = tempfile.NamedTemporaryFile(dir=existing, prefix=".probe_", delete=True)
            probe.close()
        except OSError as exc:
            raise ValueError(f"output folder {out!r} is not writable: {exc}") from exc
        self._outputs_ready = False  # files are set up at the first report (fresh) or by loadCheckpoint

    def _colvar_header(self) -> str:
        """``#! FIELDS``, ``#! SET units_*`` and the periodic CVs' ``#! SET min_*``/``max_*`` lines of a colvar."""
        units = {"time": "ps", **dict(zip(self.cvs.names, self.cvs.units)), "bias": "kJ/mol", "rbias": "kJ/mol"}
        domain = domain_lines(self.cvs.names, self.cvs.periodic, self.cvs.lower, self.cvs.upper)
        return "\n".join(["#! FIELDS " + " ".join(units)] + units_lines(units) + domain) + "\n"

    def _table_headers(self):
        """{file name: header} of the row tables of this updater (fields and their units)."""
        log = {"iteration": "1", "time": "ps", "grad_norm": "kJ/mol", "kl": "1", "lr": "1", "c": "kJ/mol",
               "phase": "-", "n_out_of_range": "1", "skipped": "1"}
        return {"colvar": self._colvar_header(),
                "ves.log": "\n".join(["#! FIELDS " + " ".join(log)] + units_lines(log)) + "\n"}

    def _run_files(self):
        """Names (in ``out``) of the files this updater writes; a fresh run backs them up."""
        names = list(self._table_headers()) + ["checkpoint.pt", "bias.pt", "fes.dat", "fes_bias.dat",
                                               "fes_bias_avg.dat", "fes_reweighted.dat"]
        # and what the analysis commands wrote from them (marginals, reweight, plot): stale beside a new run
        derived = ("bias_*.pt", "fes_bias_*.dat", "fes_colvar_reweighted*.dat", "*.png")
        return names + sorted({os.path.basename(p) for pattern in derived
                               for p in glob.glob(os.path.join(self.out, pattern))} - set(names))

    def _ensure_outputs(self, restarted: bool = False) -> None:
        """Set up the output files once: back up a previous run's files unless ``restarted``, write headers."""
        if self.out is None or getattr(self, "_outputs_ready", True):
            return
        os.makedirs(self.out, exist_ok=True)
        if not restarted:
            old = [n for n in self._run_files() if os.path.exists(os.path.join(self.out, n))]
            if old:
                k = 0
                while any(os.path.exists(os.path.join(self.out, f"bck.{k}.{n}")) for n in old):
                    k += 1
                for n in old:
                    os.replace(os.path.join(self.out, n), os.path.join(self.out, f"bck.{k}.{n}"))
                warnings.warn(f"{self.out}: the files of a previous run were moved to bck.{k}.* "
                              "(load its checkpoint before the first step to continue it instead)", stacklevel=3)
        for name, header in self._table_headers().items():
            path = os.path.join(self.out, name)
            if not os.path.exists(path):
                with open(path, "w") as fh:
                    fh.write(header)
        self._outputs_ready = True

    def writeFes(self):
        """Write ``fes.dat`` (the best estimate, :meth:`getFreeEnergy`), ``fes_bias.dat``, ``fes_bias_avg.dat``
        (decay on), ``fes_reweighted.dat`` (frozen on) and ``bias.pt``."""
        from ..io import write_grid_file

        self._ensure_outputs()
        if self.grid is None:  # Monte Carlo target: no grid, only the bias
            return self.force.exportBias(os.path.join(self.out, "bias.pt"))
        axes = self.gridAxes()
        dom = dict(lower=self.cvs.lower, upper=self.cvs.upper, units=self.cvs.units)
        write_grid_file(os.path.join(self.out, "fes_bias.dat"), self.cvs.names, axes,
                        self.getFreeEnergyFromBias(), self.cvs.periodic, **dom)
        avg = self.getAveragedFreeEnergyFromBias()
        if avg is not None:
            write_grid_file(os.path.join(self.out, "fes_bias_avg.dat"), self.cvs.names, axes, avg,
                            self.cvs.periodic, **dom)
        which = self.getFreeEnergyEstimator()  # (brings the updater up to date once, for every file below)
        best = self._estimate(which)
        if best is not None:
            write_grid_file(os.path.join(self.out, "fes.dat"), self.cvs.names, axes, best, self.cvs.periodic,
                            **dom, settings={"estimator": which})
        rw = self.getReweightedFreeEnergy()
        if rw is not None:
            write_grid_file(os.path.join(self.out, "fes_reweighted.dat"), self.cvs.names, axes, rw,
                            self.cvs.periodic, **dom)
        self.force.exportBias(os.path.join(self.out, "bias.pt"))

    def _colvar_name(self) -> str:
        return "colvar"

    def _write_log(self, st):
        with open(os.path.join(self.out, "ves.log"), "a") as fh:
            fh.write(f"{st['iteration']} {st['time_ps']:.3f} {st['grad_norm']:.6g} {st['kl']:.6g} "
                     f"{st['lr']:.6g} {st['c']:.6g} {st['phase']} {st['n_out_of_range']} {int(st['skipped'])}\n")
        if st["skipped"]:
            warnings.warn(f"Deep-VES iteration {st['iteration']} skipped: {st.get('reason')}")

    def _output_tables(self):
        """(file name, key column is time?) of the row-per-record outputs of this updater."""
        return [("colvar", True), ("ves.log", False)]

    def _truncate_outputs(self, time_ps, iteration):
        """Keep colvar rows with time <= ``time_ps`` and ves.log rows of iterations < ``iteration``."""
        for name, by_time in self._output_tables():
            path = os.path.join(self.out, name)
            if os.path.exists(path):
                truncate_rows(path, (lambda f: float(f) <= time_ps + 1e-6) if by_time else (lambda f: int(f) < iteration))
        self._outputs_ready = False
        self._ensure_outputs(restarted=True)
