"""``openmm-nnbias diffsim --system azobenzene``: stage schedule, crossing evaluations, restart across a stage
boundary (cheap stand-in potential), mechanism analysis, and one SevenNet smoke run (``slow``)."""

import importlib.util
import json
import math
import os

import pytest
import torch

torch.set_num_threads(1)

from openmm_nnbias.cli import main  # noqa: E402
from openmm_nnbias.systems.azobenzene.molecule import AZOBENZENE_NUMBERS, azobenzene_positions  # noqa: E402
from openmm_nnbias.systems.azobenzene.analysis import classify_crossings, plot_log_density  # noqa: E402
from openmm_nnbias.runners.diffsim import LOG_HEADER_STAGES, run_diffsim  # noqa: E402
from openmm_nnbias.diffsim.stages import StageSchedule, TrainingStage, apply_stage  # noqa: E402

HAS_SEVENN = importlib.util.find_spec("sevenn") is not None


class BondSprings(torch.nn.Module):
    """Cheap stand-in for SevenNet: harmonic 1-2 and 1-3 springs of the cis structure (kJ/mol, nm).

    The bond graph is the same in cis and trans and nothing holds the CNNC dihedral, so both
    isomers are minima of equal energy and the dihedral turns freely (a smoke-test potential only).
    """

    def __init__(self, k: float = 2.0e4):
        super().__init__()
        x = azobenzene_positions("cis", torch.float64)
        r = torch.cdist(x, x)
        bond = (r < 0.16) & ~torch.eye(24, dtype=torch.bool)
        angle = ((bond.double() @ bond.double()) > 0) & ~bond & ~torch.eye(24, dtype=torch.bool)
        pairs = torch.nonzero(torch.triu(bond | angle, 1))
        self.register_buffer("pairs", pairs)
        self.register_buffer("r0", r[pairs[:, 0], pairs[:, 1]])
        self.k = float(k)

    def forward(self, x):
        d = x[..., self.pairs[:, 0], :] - x[..., self.pairs[:, 1], :]
        r = (d ** 2).sum(-1).clamp_min(1e-12).sqrt()
        return 0.5 * self.k * ((r - self.r0.to(x.dtype)) ** 2).sum(-1)


TINY = dict(adjoint_steps=3, well_replicas=2, well_steps=60, minimize_steps=20)


def _run(out, epochs=None, restart=False, **kw):
    return run_diffsim("azobenzene", str(out), epochs=epochs, replicas=2, steps=8, restart=restart,
                       stages="300:1e-2:1,1000:1e-3:1", evalReplicas=2, progress=False,
                       potential=BondSprings(), **TINY, **kw)


def test_stage_schedule():
    s = StageSchedule.parse("300:1e-2:3, 1000:1e-3:2")
    assert [st.temperature for st in s.stages] == [300.0, 1000.0] and s.total_epochs == 5
    assert s.boundaries == [0, 3, 5] and [s.stage_index(e) for e in range(6)] == [0, 0, 0, 1, 1, 1]
    assert StageSchedule.parse(str(s)).to_list() == s.to_list()
    for bad in ("300:1e-2", "300:x:2", "300:1e-2:0", "-1:1e-2:2", ""):
        with pytest.raises(ValueError, match="^stages takes"):
            StageSchedule.parse(bad)
    with pytest.raises(TypeError, match="epochs"):
        TrainingStage(300.0, 1e-2, 2.5)
    with pytest.raises(ValueError, match="lr"):
        TrainingStage(300.0, 0.0, 1)
    with pytest.raises(ValueError, match="stages"):
        StageSchedule([])


def test_cli_azobenzene_stand_in_smoke_and_stage_application(tmp_path):
    setup = _run(tmp_path / "a")
    tr = setup.trainer
    assert tr.epoch == 2 and tr.simulator.temperature == 1000.0  # the last stage was applied
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3) and tr.dtype == torch.float32
    assert tr.simulator.timestep == pytest.approx(0.001) and tr.adjoint_steps == 3
    names = set(os.listdir(tmp_path / "a"))
    for n in ("bias.pt", "checkpoint.pt", "diffsim.log", "bias_stage1.pt", "bias_stage2.pt", "eval_unbiased.pt",
              "eval_stage1.pt", "eval_stage2.pt", "evaluation.json"):
        assert n in names
    lines = open(tmp_path / "a" / "diffsim.log").read().splitlines()
    assert lines[0] == LOG_HEADER_STAGES
    assert [ln.split()[-3:] for ln in lines[1:]] == [["1", "300", "0.01"], ["2", "1000", "0.001"]]
    ev = json.load(open(tmp_path / "a" / "evaluation.json"))
    assert set(ev) == {"unbiased", "stage1", "stage2"} and all(v["n"] == 2 and v["temperature_K"] == 300.0
                                                               for v in ev.values())
    e = torch.load(tmp_path / "a" / "eval_stage2.pt", weights_only=False)
    assert e["cv"].shape == (9, 2, 2) and e["R0"].shape == (2, 24, 3)
    apply_stage(tr, TrainingStage(500.0, 2e-3, 1))
    assert tr.simulator.temperature == 500.0 and tr.optimizer.param_groups[0]["lr"] == 2e-3


def test_restart_across_stage_boundary_is_exact(tmp_path):
    straight = _run(tmp_path / "s")
    _run(tmp_path / "r", epochs=1)  # stops at the end of stage 1
    assert json.load(open(tmp_path / "r" / "evaluation.json")).keys() == {"unbiased", "stage1"}
    resumed = _run(tmp_path / "r", restart=True)
    for a, b in zip(straight.bias.parameters(), resumed.bias.parameters()):
        assert torch.equal(a, b)
    assert open(tmp_path / "s" / "diffsim.log").read().split("\n")[1].split()[:3] == \
        open(tmp_path / "r" / "diffsim.log").read().split("\n")[1].split()[:3]
    es, er = (json.load(open(tmp_path / d / "evaluation.json")) for d in ("s", "r"))
    assert {k: v["crossed"] for k, v in es.items()} == {k: v["crossed"] for k, v in er.items()}
    assert resumed.trainer.simulator.temperature == 1000.0
    with pytest.raises(ValueError, match="stages"):
        run_diffsim("azobenzene", str(tmp_path / "r"), restart=True, replicas=2, steps=8, stages="300:1e-2:2",
                    progress=False, potential=BondSprings(), **TINY)
    # extending the last stage on restart: one more epoch, stage 2 evaluated again at its new end
    ext = run_diffsim("azobenzene", str(tmp_path / "r"), restart=True, replicas=2, steps=8,
                      stages="300:1e-2:1,1000:1e-3:2", evalReplicas=2, progress=False, potential=BondSprings(), **TINY)
    assert ext.trainer.epoch == 3
    ev = json.load(open(tmp_path / "r" / "evaluation.json"))
    assert (ev["stage1"]["epoch"], ev["stage2"]["epoch"]) == (1, 3)


def test_restart_refuses_changed_cli_defaults(tmp_path, monkeypatch):
    """The azobenzene CLI defaults (AZOBENZENE_CLI) are part of the checkpoint's settings."""
    import openmm_nnbias.recipes.diffsim.azobenzene as azo

    _run(tmp_path / "d", epochs=1)
    monkeypatch.setitem(azo.AZOBENZENE_CLI, "timestep", 0.0005)
    with pytest.raises(ValueError, match="settings differ from the checkpoint.*timestep"):
        _run(tmp_path / "d", restart=True)


def test_cli_errors(capsys):
    assert main(["diffsim", "--system", "azobenzene", "--stages", "300:1e-2", "--out", "/tmp/x"]) == 2
    assert "--stages" in capsys.readouterr().err
    assert main(["diffsim", "--system", "mueller-brown", "--out", "/tmp/x"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["diffsim", "--system", "mueller-brown", "--epochs", "1", "--eval-replicas", "-1",
                 "--out", "/tmp/x"]) == 2


def test_classify_crossings_and_plot(tmp_path):
    t = torch.linspace(0, 1, 21)
    dih = torch.deg2rad(30 + 150 * t)
    rot = torch.stack([dih, torch.full_like(t, math.radians(120))], -1)
    inv = torch.stack([dih, torch.deg2rad(120 + 58 * torch.sin(math.pi * t))], -1)
    ria = torch.stack([dih, torch.deg2rad(120 + 35 * torch.sin(math.pi * t))], -1)
    cv = torch.stack([rot, inv, ria, rot], 1)
    r = classify_crossings(cv, torch.tensor([20, 20, 20, -1]))
    assert r["labels"] == ["rotation", "inversion", "rotation-assisted inversion"]
    assert r["counts"] == {"rotation": 1, "rotation-assisted inversion": 1, "inversion": 1}
    with pytest.raises(ValueError, match="cv"):
        classify_crossings(cv[..., :1], torch.tensor([1]))
    p = plot_log_density([("a", cv), ("b", cv[:, :2])], str(tmp_path / "d.png"), wells={"trans": (math.pi, 2.0)})
    assert os.path.getsize(plot_log_density([("a", cv)], str(tmp_path / "f.png"), folded=True)) > 1000
    assert os.path.getsize(p) > 1000


@pytest.mark.long  # ~4 min of CPU (the setup minimizes and equilibrates on SevenNet): pytest -m long
@pytest.mark.skipif(not HAS_SEVENN, reason="sevenn not installed (pip install 'openmm_nnbias[sevenn]')")
def test_cli_azobenzene_on_sevennet_smoke(tmp_path):
    """The staged run on SevenNet-0 itself: one replica, 4 steps, one epoch, small wells (~1 min of CPU)."""
    out = tmp_path / "azo"
    setup = run_diffsim("azobenzene", str(out), epochs=1, replicas=1, steps=4, stages="300:1e-2:1,1000:1e-3:1",
                        evalReplicas=1, progress=False, potential="7net-0", **TINY)
    assert setup.info["potential"] == "SevenNetEnergy" and setup.trainer.dtype == torch.float32
    ev = json.load(open(out / "evaluation.json"))
    assert set(ev) == {"unbiased", "stage1"} and ev["stage1"]["n"] == 1
    assert os.path.exists(out / "bias_stage1.pt") and len(AZOBENZENE_NUMBERS) == 24


@pytest.mark.skipif(not HAS_SEVENN, reason="sevenn not installed (pip install 'openmm_nnbias[sevenn]')")
def test_float32_sevennet_vjp_matches_float64():
    """The CLI trains azobenzene in float32: its forces and vector–Hessian products (after warm-up calls,
    where scripted kernels used to go wrong) agree with float64."""
    from openmm_nnbias.diffsim.langevin import make_force_fn
    from openmm_nnbias.systems.azobenzene.sevennet import SevenNetEnergy

    gen = torch.Generator().manual_seed(5)
    x = azobenzene_positions("cis", torch.float64)[None] + 0.002 * torch.randn(1, 24, 3, generator=gen,
                                                                              dtype=torch.float64)
    v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    out = {}
    for dt in (torch.float32, torch.float64):
        f = make_force_fn(SevenNetEnergy(AZOBENZENE_NUMBERS, dtype=dt))
        xx = x.to(dt)
        f(xx), f(xx)
        F, vjp = torch.func.vjp(f, xx)
        out[dt] = (F.double(), vjp(v.to(dt))[0].double())
    (F32, H32), (F64, H64) = out[torch.float32], out[torch.float64]
    assert float((F32 - F64).norm() / F64.norm()) < 1e-4
    assert float((H32 - H64).norm() / H64.norm()) < 1e-4
