"""OpenMM platform selection with a clear error for unknown names."""

__all__ = ["available_platforms", "get_platform"]


def available_platforms() -> list:
    """Names of the OpenMM platforms that can be used on this machine."""
    import openmm as mm

    return [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]


def get_platform(name: str = None):
    """Return ``openmm.Platform`` by name (``None``: the fastest available one).

    Examples
    --------
    >>> get_platform("Reference").getName()
    'Reference'
    """
    import openmm as mm

    names = available_platforms()
    if name is None:
        return max((mm.Platform.getPlatformByName(n) for n in names), key=lambda p: p.getSpeed())
    if name not in names:
        raise ValueError(f"unknown OpenMM platform {name!r}; available here: {names}")
    return mm.Platform.getPlatformByName(name)
