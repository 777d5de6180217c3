"""Configs: generated from the schemas, and byte-mutated YAML, never give a traceback (issue 22).

(1) Configs drawn field by field from the pydantic schema of every generator kind, with values
of any type (dates, NaN, ±inf, negatives, huge numbers, lists, mappings, unknown keys with
control characters) and run through `main.py run`: exit 2 with one line per bad key, each naming
the file, or (valid) the point where a run would start. (2) Byte-mutated copies of a valid YAML
config through what `main.py run` does before a run starts.
"""
from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from test_fuzz_inputs import FUZZ, mutated

wild = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.sampled_from([0, -1, 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.dates(), st.datetimes(),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(-3, 3), st.text(max_size=4)), max_size=3),
)


def _model_of(annotation: typing.Any) -> type[BaseModel] | None:
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


@st.composite
def config_dict(draw, cls: type[BaseModel], depth: int = 0) -> dict:
    """Some of the schema's fields (sections recursively), each a plausible or a wild value."""
    out: dict[str, typing.Any] = {}
    for name, f in cls.model_fields.items():
        if not draw(st.booleans()):
            continue
        sub = _model_of(f.annotation)
        if sub is not None and depth < 3 and draw(st.integers(0, 3)):
            out[name] = draw(config_dict(sub, depth + 1))
        elif (f.default is not None and not isinstance(f.default, BaseModel) and f.default is not PydanticUndefined
              and draw(st.booleans())):
            d = f.default
            out[name] = draw(st.sampled_from([d, -d if isinstance(d, (int, float)) and not isinstance(d, bool) else d,
                                              str(d), [d]]))
        else:
            out[name] = draw(wild)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.text(min_size=1, max_size=8))] = draw(wild)
    return out


def _kinds() -> dict[str, type[BaseModel]]:
    from ads.harness.kinds import kinds, resolve

    return {k: resolve(k)[0] for k in kinds()}


@pytest.fixture(scope="module")
def kinds():
    return _kinds()


@pytest.fixture
def no_run(monkeypatch):
    """A config that validates stops right where a run would start: the property is about input."""
    from models.errors import UserError
    from ads.run import RunContext

    def stop(*a, **k):
        raise UserError("valid config (the run itself is not started in this test)")

    monkeypatch.setattr(RunContext, "create", stop)


def _check_cli_errors(err: str, path: Path) -> None:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: ")
    if "valid config" not in lines[0]:
        for ln in lines:  # each line names the file (and, for a schema error, the key)
            assert str(path) in ln or "--set" in ln, err


@FUZZ
@given(data=st.data())
def test_generated_configs_are_a_result_or_one_line_per_bad_key(tmp_path_factory, kinds, no_run, capsys, data):
    from ads.cli import main

    kind = data.draw(st.sampled_from(sorted(kinds)))
    cfg = data.draw(config_dict(kinds[kind]))
    cfg["kind"] = data.draw(st.sampled_from([kind, kind, kind, 7, "nope"]))
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert main(["run", str(path)]) == 2
    _check_cli_errors(capsys.readouterr().err, path)


def _config(p):
    from ads.cli import _resolve_kind
    from ads.config import load_config, read_yaml

    from ads.config import ConfigError

    data = read_yaml(p)  # then what ads.cli.cmd_run does before a run starts
    kind = data.get("kind", "ads")
    if not isinstance(kind, str):
        raise ConfigError(f"{p}: key 'kind' must be a string")
    try:
        cls = _resolve_kind(kind)[0]
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    return load_config(cls, p)



CONFIG_SEED = (b"kind: ads\nname: fuzz\nseed: 3\ntasks:\n  families: {gsm8k: 1}\n  test_families: {gsm8k: 1}\n"
               b"loop:\n  iterations: 1\n  lambda_cost: 0.02\ntracking:\n  wandb: false\n")


def test_the_seed_config_is_valid(tmp_path):
    p = tmp_path / "in.yaml"
    p.write_bytes(CONFIG_SEED)
    assert _config(p)


def test_byte_mutated_configs_are_a_result_or_errors_naming_the_file(tmp_path):
    from ads.config import ConfigError

    p = tmp_path / "in.yaml"

    @FUZZ
    @given(content=mutated(CONFIG_SEED))
    def check(content):
        p.write_bytes(content)
        try:
            _config(p)
        except ConfigError as e:
            assert all(str(p) in ln for ln in str(e).splitlines()), str(e)  # one line per bad key, each names the file

    check()
