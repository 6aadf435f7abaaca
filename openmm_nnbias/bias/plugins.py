"""openmm-torch's ``TorchForce`` and its plugin libraries, loaded in the order that works.

With the PyPI wheels OpenMM loads its plugins at ``import openmm``; openmm-torch's need torch's
libraries loaded first. :func:`import_torch_force` imports ``TorchForce`` after torch and loads again
the plugins that failed (:func:`load_failed_plugins`, :func:`plugin_load_failures`).
"""

import os

__all__ = ["import_torch_force", "load_failed_plugins", "plugin_load_failures"]


_RETRIED_PLUGINS: set = set()


def plugin_load_failures() -> list:
    """Paths of openmm-torch plugin libraries that OpenMM failed to load (``Platform.getPluginLoadFailures()``)."""
    import re

    import openmm as mm

    paths = []
    for failure in mm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (.+?): ", failure)
        if match and "OpenMMTorch" in os.path.basename(match.group(1)):
            paths.append(match.group(1))
    return paths


def load_failed_plugins() -> list:
    """Load openmm-torch's plugins that failed at ``import openmm``, now that torch is loaded.

    With the PyPI wheels OpenMM loads its plugins when ``openmm`` is imported; in a script that
    imports ``openmm`` before ``torch``, openmm-torch's plugins fail (``libnvrtc.so.12`` and
    torch's libraries are not loaded yet) and every Context with a TorchForce fails with "No
    Platform supports all the requested kernels". Each failed library is loaded again with
    ``Platform.loadPluginLibrary`` (once; those that still fail, e.g. OpenCL without a driver,
    are left alone). Returns the paths loaded now.
    """
    import torch  # noqa: F401  (its shared libraries must be loaded first)
    import openmm as mm

    loaded = []
    for path in plugin_load_failures():
        if path in _RETRIED_PLUGINS:
            continue
        _RETRIED_PLUGINS.add(path)
        try:
            mm.Platform.loadPluginLibrary(path)
        except mm.OpenMMException:
            continue
        loaded.append(path)
    return loaded


def import_torch_force():
    """``openmmtorch.TorchForce``, imported after torch and without openmmtorch 1.5's
    "importing 'simtk.openmm' is deprecated" message (its wrapper still imports simtk.openmm)."""
    import contextlib
    import io

    import torch  # noqa: F401  (torch must be imported before openmmtorch)

    with contextlib.redirect_stderr(io.StringIO()):
        import simtk.openmm  # noqa: F401
        from openmmtorch import TorchForce
    load_failed_plugins()
    return TorchForce
