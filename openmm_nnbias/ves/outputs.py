"""Row-per-record text outputs of the Deep-VES updater: ``colvar`` and ``ves.log``.

Both are PLUMED-style tables (``#! FIELDS`` header, one row per sample / iteration), appended
during the run and truncated back to the checkpoint on restart, so that a restarted run's files
equal those of an uninterrupted run.
"""

import io
import os
import tempfile

import numpy as np

from .._io import truncate_rows

__all__ = ["UpdaterFiles"]


class UpdaterFiles:
    """Mixin of :class:`~openmm_nnbias.ves.DeepVESUpdater`: needs ``cvs``, ``out``, ``sampleStride``
    and ``colvarStride``."""

    def _prepare_out(self, out):
        try:
            os.makedirs(out, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=out, prefix=".probe_", delete=True)
            probe.close()
        except OSError as exc:
            raise ValueError(f"output folder {out!r} is not writable: {exc}") from exc
        colvar = os.path.join(out, "colvar")
        if not os.path.exists(colvar):
            with open(colvar, "w") as fh:
                fh.write("#! FIELDS time " + " ".join(self.cvs.names) + " bias rbias\n")
        log = os.path.join(out, "ves.log")
        if not os.path.exists(log):
            with open(log, "w") as fh:
                fh.write("#! FIELDS iteration time grad_norm kl lr c phase n_out_of_range skipped\n")

    def _write_colvar(self, s, v, c, times):
        keep = slice(None, None, self.colvarStride // self.sampleStride)
        data = np.column_stack([times[keep], s.numpy()[keep], v.numpy()[keep], v.numpy()[keep] - c])
        buf = io.StringIO()
        np.savetxt(buf, data, fmt="%.6f")
        with open(os.path.join(self.out, "colvar"), "a") as fh:
            fh.write(buf.getvalue())

    def _write_log(self, st):
        with open(os.path.join(self.out, "ves.log"), "a") as fh:
            fh.write(f"{st['iteration']} {st['time_ps']:.3f} {st['grad_norm']:.6g} {st['kl']:.6g} "
                     f"{st['lr']:.6g} {st['c']:.6g} {st['phase']} {st['n_out_of_range']} {int(st['skipped'])}\n")
        if st["skipped"]:
            import warnings

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
