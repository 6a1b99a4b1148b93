"""Every config key the daemon accepts is documented for the operators who write the file.

The oracle is the documentation itself: a key the config model accepts but no page
names is a key nobody can find (README's Configuration table, docs/providers/*.md).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

import bridge.config as config_module

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md").read_text() + "".join(page.read_text() for page in sorted((ROOT / "docs").rglob("*.md")))
SECTION_MODELS = [
    model
    for model in vars(config_module).values()
    if inspect.isclass(model)
    and issubclass(model, BaseModel)
    and model.__module__ == config_module.__name__
    and model.model_fields  # the common base has none
    and model is not config_module.Config  # its fields are the [sections] themselves
]


def documented(key: str) -> bool:
    """Named as code (`key`, `key = …`) or in a TOML example (key = …)."""
    return f"`{key}`" in DOCS or f"`{key} " in DOCS or f"\n{key} =" in DOCS or f" {key} =" in DOCS


@pytest.mark.parametrize("model", SECTION_MODELS, ids=lambda model: model.__name__)
def test_every_key_of_the_section_is_documented(model: type[BaseModel]) -> None:
    keys = [field.alias or name for name, field in model.model_fields.items()]
    assert [key for key in keys if not documented(key)] == []


def test_an_undocumented_key_is_noticed() -> None:
    assert not documented("no_such_key_anywhere")
