"""Multiple-time-step integration of a neural bias: the bias on a slower time step.

On the CPU the openmm-torch evaluation of a many-CV bias costs more than the whole force field
of a small peptide. The bias acts on a few torsions and is smooth, so it can be applied as an
impulse every ``slowSteps`` inner steps with OpenMM's BAOAB-RESPA ``MTSLangevinIntegrator``
(Tuckerman et al. 1992; Lagardère et al. 2019): the bias force group is evaluated once per
outer step ``slowSteps * timestep``, every other force group of the System at every inner step.

All quantities in MD units (K, 1/ps, ps).
"""

from __future__ import annotations

import math

from .._units import strip_unit

__all__ = ["mts_langevin_integrator", "bias_force_group"]


def bias_force_group(biasForce) -> int:
    """Force group of ``biasForce``: a NeuralBiasForce (after ``addToSystem``), an OpenMM Force or an int."""
    if isinstance(biasForce, bool):
        raise ValueError("biasForce must be a NeuralBiasForce, an OpenMM Force or a force group, got a bool")
    if isinstance(biasForce, int):
        group = biasForce
    elif hasattr(biasForce, "getForceGroup"):
        group = biasForce.getForceGroup()
    elif hasattr(biasForce, "forceGroup"):
        group = biasForce.forceGroup
        if group is None:
            raise ValueError("the NeuralBiasForce has no force group yet: call addToSystem() first")
    else:
        raise ValueError(f"biasForce must be a NeuralBiasForce, an OpenMM Force or an int, got {type(biasForce).__name__}")
    group = int(group)
    if not 0 <= group <= 31:
        raise ValueError(f"force group must be in 0..31, got {group}")
    return group


def mts_langevin_integrator(temperature, friction, timestep, biasForce, slowSteps: int, system):
    """``MTSLangevinIntegrator`` evaluating the bias every ``slowSteps`` inner steps.

    Parameters
    ----------
    temperature : Quantity or float
        Heat-bath temperature (K).
    friction : Quantity or float
        Friction coefficient (1/ps, >= 0).
    timestep : Quantity or float
        Inner (fast) time step (ps). The integrator's step, the *outer* step, is
        ``slowSteps * timestep``: one ``integrator.step(1)`` advances that much time.
    biasForce : NeuralBiasForce, openmm.Force or int
        The bias (already in ``system``), or its force group. No other force of ``system`` may
        share that group.
    slowSteps : int
        Inner steps per bias evaluation (>= 1; 1 is plain BAOAB Langevin with every force
        every step).
    system : openmm.System
        The System; every force group it uses besides the bias group is integrated at every
        inner step (groups [(bias_group, 1), (g, slowSteps) for each other group g]).

    Returns
    -------
    openmm.MTSLangevinIntegrator

    Examples
    --------
    >>> import openmm as mm
    >>> system = mm.System(); _ = system.addParticle(1.0)
    >>> fast = mm.CustomExternalForce("50*x^2"); _ = fast.addParticle(0, []); _ = system.addForce(fast)
    >>> slow = mm.CustomExternalForce("x"); _ = slow.addParticle(0, []); slow.setForceGroup(31)
    >>> _ = system.addForce(slow)
    >>> integ = mts_langevin_integrator(300.0, 1.0, 0.002, slow, 4, system)
    >>> round(integ.getStepSize().value_in_unit(mm.unit.picosecond), 6)
    0.008
    """
    import openmm as mm

    if isinstance(slowSteps, bool) or not isinstance(slowSteps, int) or slowSteps < 1:
        raise ValueError(f"slowSteps must be an integer >= 1 (inner steps per bias evaluation), got {slowSteps!r}")
    temperature = strip_unit(temperature, "kelvin")
    friction = float(friction.value_in_unit(mm.unit.picosecond ** -1) if hasattr(friction, "value_in_unit") else friction)
    timestep = strip_unit(timestep, "picosecond")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0 K, got {temperature}")
    if not (friction >= 0 and math.isfinite(friction)):
        raise ValueError(f"friction must be a finite number >= 0 (1/ps), got {friction}")
    if not (timestep > 0 and math.isfinite(timestep)):
        raise ValueError(f"timestep must be a finite number > 0 ps, got {timestep}")
    if not isinstance(system, mm.System):
        raise ValueError(f"system must be an openmm.System, got {type(system).__name__}")
    group = bias_force_group(biasForce)
    in_bias_group = [system.getForce(i) for i in range(system.getNumForces())
                     if system.getForce(i).getForceGroup() == group]
    if not in_bias_group:
        raise ValueError(f"no force of the System is in the bias force group {group}: add the bias first")
    if len(in_bias_group) > 1:
        names = [f.getName() for f in in_bias_group]
        raise ValueError(f"force group {group} holds {len(in_bias_group)} forces {names}; the bias must be "
                         "alone in its group (everything in it runs on the slow step)")
    fast = sorted({system.getForce(i).getForceGroup() for i in range(system.getNumForces())} - {group})
    groups = [(group, 1)] + [(g, slowSteps) for g in fast]
    return mm.MTSLangevinIntegrator(temperature * mm.unit.kelvin, friction / mm.unit.picosecond,
                                    slowSteps * timestep * mm.unit.picosecond, groups)
