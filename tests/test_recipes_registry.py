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
