"""One registry of generator kinds feeds `main.py run` and the seeds' own command lines."""
from __future__ import annotations

import importlib

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
