"""An endpoint whose circuit is open (EndpointFailingError) ends a run in every generator's model-call
path, instead of being counted as one more rejection until the run finishes with nothing written."""
from __future__ import annotations

import types
from collections import Counter

import pytest

from models.base import ModelError
from models.openai_compat import EndpointFailingError

MSG = [{"role": "user", "content": "x"}]


class Raising:
    model_id = "raising"

    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def generate(self, messages, **kw):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc,fatal", [(EndpointFailingError("circuit open"), True), (ModelError("one bad call"), False)])
def test_bandit_arm(exc, fatal):
    from ads.generators.bandit.arms import Arm

    arm = Arm("naive:plain", "naive", "plain", 0.7)
    m = Raising(exc)
    if fatal:
        with pytest.raises(EndpointFailingError):
            arm._complete(m, "sys", ["line"], "item-1", 0, 8, None)
    else:
        assert "model error" in arm._complete(m, "sys", ["line"], "item-1", 0, 8, None).error


@pytest.mark.parametrize("exc,fatal", [(EndpointFailingError("circuit open"), True), (ModelError("one bad call"), False)])
def test_tool_use_conversation_calls(exc, fatal):
    from ads.generators.tools.conversation import ConversationBuilder

    s = types.SimpleNamespace(max_tokens=8, temperature=0.7, retry_temperature=0.9, max_arg_attempts=2,
                              text_max_tokens=8)
    me = types.SimpleNamespace(counts=Counter(), s=s, seed=0)
    m = Raising(exc)
    if fatal:
        with pytest.raises(EndpointFailingError):
            ConversationBuilder._ask(me, m, MSG, {"type": "object"}, "sid", "plan")
        with pytest.raises(EndpointFailingError):
            ConversationBuilder._text(me, m, "sys", "user", "sid", "reply")
    else:
        assert ConversationBuilder._ask(me, m, MSG, {"type": "object"}, "sid", "plan")[1].startswith("model error")
        assert ConversationBuilder._text(me, m, "sys", "user", "sid", "reply", fallback="fb") == "fb"


def test_api_registry_lets_an_open_circuit_end_the_run_but_counts_other_api_errors():
    from apis.api_registry import ApiRegistry, ArgSpec

    class Demo:
        name, description, cost = "demonstration_generation", "d", 1.0
        args = {"topic": ArgSpec("string")}

        def __init__(self, exc):
            self.exc = exc

        def __call__(self, topic):
            raise self.exc

    with pytest.raises(EndpointFailingError):
        ApiRegistry([Demo(EndpointFailingError("circuit open"))]).call("demonstration_generation", {"topic": "t"})
    obs = ApiRegistry([Demo(ModelError("bad"))]).call("demonstration_generation", {"topic": "t"})
    assert not obs.ok and "ModelError" in obs.error


def test_judge_and_perspectives_engine():
    from ads.generators.persp.engine import Engine
    from ads.quality.judge import Judge

    with pytest.raises(EndpointFailingError):
        Judge(Raising(EndpointFailingError("circuit open"))).judge(instruction="i", response="r")
    assert not Judge(Raising(ModelError("bad"))).judge(instruction="i", response="r").ok
    me = types.SimpleNamespace(retry=types.SimpleNamespace(max_attempts=3), client_retries=False, model=Raising(EndpointFailingError("open")),
                               max_tokens=8, seed=0)
    with pytest.raises(EndpointFailingError):
        Engine.call(me, MSG, usage=None, sample_id="s", temperature=0.0)
    assert me.model.calls == 1  # not retried: the circuit is open
