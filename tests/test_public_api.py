"""The top level: what it lists is what it holds, each name documented, no second spellings."""

import inspect
import types

import jaxnet


def _is_module(name):
    return isinstance(getattr(jaxnet, name), types.ModuleType)


def test_all_lists_exactly_the_public_names_once():
    """Submodules become attributes as they are imported, so only the other names are compared."""
    public = {name for name in vars(jaxnet) if not name.startswith("_") and not _is_module(name)}
    assert len(jaxnet.__all__) == len(set(jaxnet.__all__))
    assert {name for name in jaxnet.__all__ if not _is_module(name)} == public
    assert all(hasattr(jaxnet, name) for name in jaxnet.__all__)


def test_every_exported_function_and_class_has_a_docstring():
    undocumented = [
        name
        for name in jaxnet.__all__
        if not _is_module(name) and not inspect.getdoc(getattr(jaxnet, name))
    ]
    assert undocumented == []


def test_activation_layers_live_in_their_module_only():
    for name in ("Relu", "Tanh", "Sigmoid", "Softmax"):
        assert not hasattr(jaxnet, name)
        assert callable(getattr(jaxnet.activations, name))
