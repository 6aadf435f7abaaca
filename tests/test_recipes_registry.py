"""The one registry of systems (openmm_nnbias.recipes.registry): builders by name, recipes, DiffSim setups, choices."""

import pytest

from openmm_nnbias.recipes import (DEEPVES_RECIPES, DIFFSIM_SETUPS, METAD_RECIPES, SYSTEM_NAMES, get_diffsim_setup,
                                   get_recipe, get_system, system_names)


def test_get_system_models():
    assert get_system("wolfe-quapp").name == "wolfe-quapp"
    assert get_system("Mueller_Brown", energy_scale=0.5).name == "mueller-brown"


def test_get_system_unknown_name():
    with pytest.raises(ValueError) as info:
        get_system("chignolin")
    for name in SYSTEM_NAMES:
        assert name in str(info.value)


def test_system_names_per_method():
    assert system_names("deepves") == sorted(DEEPVES_RECIPES)
    assert system_names("metad") == sorted(METAD_RECIPES)
    assert system_names("diffsim") == ["mueller-brown", "alanine-dipeptide", "azobenzene", "mueller-brown-authors"]
    with pytest.raises(ValueError, match="method must be"):
        system_names("opes")


def test_every_recipe_names_a_system_of_the_registry():
    """Recipes without their own builder (silicon has one) build through get_system."""
    for name, recipe in DEEPVES_RECIPES.items():
        assert recipe.name == name and (recipe.builder is not None or name in SYSTEM_NAMES), name
    for name, recipe in METAD_RECIPES.items():
        assert recipe.name == name and name in SYSTEM_NAMES and get_recipe(name, "metad") is recipe


def test_every_diffsim_setup_resolves():
    for name in DIFFSIM_SETUPS:
        fn = get_diffsim_setup(name)
        assert callable(fn) and fn.__module__.startswith("openmm_nnbias.recipes.diffsim."), name


def test_presets_replace_the_defaults_and_overrides_win():
    """A preset is a named set of recipe options: build_deepves and the CLI take it; unknown names are one error."""
    from openmm_nnbias.recipes import DEEPVES_RECIPES, get_recipe
    from openmm_nnbias.runners import build_deepves

    assert get_recipe("wolfe-quapp").presetOptions("paper") == {"tauKL": 50000}
    assert get_recipe("alanine-tetrapeptide").presetOptions("paper") == {"mcPoints": 25000}
    for name, recipe in DEEPVES_RECIPES.items():  # a preset names only options the builder takes
        for options in recipe.presets.values():
            assert set(options) <= set(recipe.options) | set(recipe.tetrapeptide) | {
                "learningRate", "outputLearningRateScale", "tauKL", "tauDecay", "klThreshold", "freezeRatio"}, name
    _, updater, _ = build_deepves("wolfe-quapp", preset="paper")
    assert updater.schedule.tauKL == 50000
    _, updater, _ = build_deepves("wolfe-quapp", preset="paper", overrides={"tauKL": 7})
    assert updater.schedule.tauKL == 7
    with pytest.raises(ValueError, match=r"preset: villin has \[\], got 'paper'"):
        build_deepves("villin", preset="paper")
    with pytest.raises(TypeError, match="preset must be a str, got int"):
        build_deepves("wolfe-quapp", preset=1)


def test_cli_preset_only_with_system(tmp_path, capsys):
    from openmm_nnbias.cli import main

    path = tmp_path / "in.yaml"
    path.write_text("system: {pdb: x.pdb}\n")
    assert main(["deepves", "--input", str(path), "--preset", "paper"]) != 0
    assert "--preset applies to --system runs" in capsys.readouterr().err


def test_alanine_dipeptide_default_is_the_race_variant_and_paper_stays_reachable():
    """Default: five iterations per ps, a sample every 2 steps, a push every 5th iteration (the race's
    it100s2p5avg); preset "paper": the paper's one iteration per ps; an explicit sampleStride wins."""
    from openmm_nnbias.runners import build_deepves

    def settings(**kw):
        _, up, _ = build_deepves("alanine-dipeptide", **kw)
        return (up.stride, up.sampleStride, up.execution.pushInterval, up.schedule.tauKL, up.schedule.tauDecay,
                up.optimizer.outputLearningRateScale)

    assert settings() == (100, 2, 5, 50000, 1000 * 5, 10.0)
    assert settings(preset="paper") == (500, 10, 1, 10000, 1000, 1.0)
    assert settings(preset="paper", sampleStride=4)[1] == 4
    assert settings(sampleStride=1, overrides={"pushInterval": 1})[1:3] == (1, 1)
