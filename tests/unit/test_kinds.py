"""One registry of generator kinds feeds `main.py run` and the seeds' own command lines."""
from __future__ import annotations

import importlib
from typing import get_args

import pytest

from ads.cli import main
from ads.harness.kinds import GENERATORS, commands, kinds, resolve


@pytest.mark.parametrize("kind", kinds())
def test_every_kind_resolves_to_a_config_whose_kind_is_its_name(kind):
    cfg_cls, run = resolve(kind)
    assert cfg_cls.model_fields["kind"].default == kind and callable(run)


def test_each_seed_command_line_runs_as_main_py_kind_and_its_alias(capsys):
    names = commands()
    assert {"tool_use", "tools", "self_evolving", "evolve", "perspectives"} <= set(names)
    for name, (kind, target) in names.items():
        mod, fn = target.split(":")
        assert callable(getattr(importlib.import_module(mod), fn)) and kind in GENERATORS
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_an_unknown_kind_is_one_line_naming_the_choices(tmp_path, capsys):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("kind: nope\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown kind 'nope'" in err and "bandit" in err


@pytest.mark.parametrize("kind", kinds())
def test_every_kind_names_its_models_the_same_way(kind):
    """`models: {role: ...}` in every generator's config; the role sections are model configs."""
    cfg_cls, _ = resolve(kind)
    assert "models" in cfg_cls.model_fields
    roles = cfg_cls.model_fields["models"].annotation.model_fields
    for role, f in roles.items():
        types = [t for t in (get_args(f.annotation) or (f.annotation,)) if t is not type(None)]
        # a ModelConfig, or the perspectives seed's own model_config (model_name, ...)
        assert all({"name", "model_name"} & set(t.model_fields) for t in types), role
    # older top-level keys are read and land under models:
    for old, role in cfg_cls.LEGACY_ROLE_KEYS.items():
        assert role in roles, (old, role)
