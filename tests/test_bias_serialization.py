"""A serialized System never silently loses or shares its bias (torch backend, live weights).

The live weights exist only in the process that made the NeuralBiasForce (an unlinked buffer reached
through /proc/self/fd): a System written with XmlSerializer and loaded in another process fails at its
first evaluation, while the writer runs and after it ended, and leaves nothing in /dev/shm; bias.pt is
the way to carry a bias to another process.
"""

import os
import subprocess
import sys
import textwrap

import pytest

WRITER = textwrap.dedent("""
    import sys, torch, openmm as mm
    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.cvs import CVSet, Position
    cvs = CVSet([Position(0, "x", -3.0, 3.0)])
    bias = NeuralBias.from_cvs(cvs, seed=0, hidden=(8,), zero_output=False)
    force = NeuralBiasForce(cvs, bias, backend="torch")
    system = mm.System(); system.addParticle(1.0)
    force.addToSystem(system)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([[0.5, 0.0, 0.0]])
    with torch.no_grad():
        bias.layers[-1].bias.add_(100.0)  # the live bias moves by 100 kJ/mol after the XML is written
    open(sys.argv[1], "w").write(mm.XmlSerializer.serialize(system))
    force.updateWeights(ctx)
    force.exportBias(sys.argv[2])
    print(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole))
    if len(sys.argv) > 3:  # stay alive until told
        sys.stdin.readline()
""")

READER = textwrap.dedent("""
    import os, sys, torch, openmm as mm, openmmtorch
    system = mm.XmlSerializer.deserialize(open(sys.argv[1]).read())
    if len(sys.argv) > 2:  # put some other file at every low descriptor number
        spare = os.open(sys.argv[2], os.O_RDONLY)
        for fd in range(3, 64):
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(spare, fd)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([[0.5, 0.0, 0.0]])
    print(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole))
""")

STATIC = textwrap.dedent("""
    import sys, torch, openmm as mm
    from openmm_nnbias.bias import load_bias
    system = mm.System(); system.addParticle(1.0)
    system.addForce(load_bias(sys.argv[1]))
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([[0.5, 0.0, 0.0]])
    print(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole))
""")


def _python(code, *args, **kwargs):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def _shm():
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The XML and bias.pt of a writer process that has ended, and the live energy it saw."""
    d = tmp_path_factory.mktemp("ser")
    before = _shm()
    out = _python(WRITER, d / "system.xml", d / "bias.pt")
    assert out.returncode == 0, out.stderr
    assert not {n for n in _shm() - before if n.startswith("openmm_nnbias")}  # nothing left behind
    return d, float(out.stdout.split()[-1])


def test_after_the_writer_ended_the_copy_fails_and_creates_nothing(written):
    d, _ = written
    before = _shm()
    out = _python(READER, d / "system.xml")
    assert out.returncode != 0 and "unable to open file </proc/self/fd/" in out.stderr
    assert _shm() == before


def test_another_file_at_that_descriptor_gives_the_message_naming_the_problem(written, tmp_path):
    d, _ = written
    spare = tmp_path / "zeros"
    spare.write_bytes(bytes(1 << 20))
    out = _python(READER, d / "system.xml", spare)
    assert out.returncode != 0
    assert "live weights exist only in the Python process that created its NeuralBiasForce" in out.stderr
    assert "exportBias('bias.pt')" in out.stderr


def test_while_the_writer_runs_the_copy_does_not_share_its_weights(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "system.xml"), str(tmp_path / "bias.pt"),
                               "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        writer.stdout.readline()  # the writer has pushed its new weights and waits
        out = _python(READER, tmp_path / "system.xml")
        assert out.returncode != 0 and "/proc/self/fd/" in out.stderr  # not the writer's live +100 kJ/mol
    finally:
        writer.communicate("\n", timeout=60)


def test_bias_pt_carries_the_bias_in_force_to_another_process(written):
    d, live = written
    out = _python(STATIC, d / "bias.pt")
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout.split()[-1]) - live) < 1e-9 and live > 50.0


def test_the_live_buffer_outlives_the_python_force_object():
    """A TorchForce stays usable in its System after the NeuralBiasForce object is gone (buffer never closed)."""
    import gc

    import openmm as mm

    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.cvs import CVSet, Position

    cvs = CVSet([Position(0, "x", -3.0, 3.0)])
    bias = NeuralBias.from_cvs(cvs, seed=0, hidden=(8,), zero_output=False)
    expected = float(bias(__import__("torch").tensor([[0.5]], dtype=bias.layers[0].weight.dtype)))
    system = mm.System()
    system.addParticle(1.0)
    NeuralBiasForce(cvs, bias, backend="torch").addToSystem(system)
    gc.collect()
    for _ in range(3):  # other files opened meanwhile must not take its descriptor
        open(__file__).close()
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([[0.5, 0.0, 0.0]])
    energy = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole)
    assert abs(energy - expected) < 1e-9
