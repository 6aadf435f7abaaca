"""Entry point of the Deep-VES learner child process (``python -m openmm_nnbias.ves._learner_main``)."""

from openmm_nnbias.ves.learner_process import _serve

if __name__ == "__main__":  # pragma: no cover - runs in the child
    _serve()
