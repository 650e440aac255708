"""The front ends' protocols are met by what is wired into them.

The TUI and the control API know the engine only as ``EngineHandle`` (and the
TUI starts it through ``EngineLifecycle``); the screens know the app only as
``ScreenHost``.  Nothing checks a Protocol at run time, so these tests compare
each implementation's methods with the protocol's: every member present, every
protocol parameter accepted under the same name and kind, every extra one optional.
"""

from __future__ import annotations

import inspect

import pytest

from tests.ui.fixtures import EngineDouble, snapshot_app
from tmtool.engine.engine import Engine
from tmtool.api.client import RemoteEngine
from tmtool.engine.ports import EngineHandle, EngineLifecycle
from tmtool.runtime import Runtime
from tmtool.screens.host import ScreenHost


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


def signature_problems(protocol: type, implementation: type) -> list[str]:
    problems = []
    for name, wanted in protocol_methods(protocol).items():
        member = inspect.getattr_static(implementation, name, None)
        if member is None or not callable(member):
            problems.append(f"{implementation.__name__}.{name} is missing")
            continue
        if inspect.iscoroutinefunction(getattr(protocol, name)) and not inspect.iscoroutinefunction(
            inspect.unwrap(member)
        ):
            problems.append(f"{implementation.__name__}.{name} is not a coroutine function")
        # A Textual @work method keeps its signature on __wrapped__.
        have = inspect.signature(inspect.unwrap(member))
        for parameter in wanted.parameters.values():
            if parameter.name == "self":
                continue
            match = have.parameters.get(parameter.name)
            if match is None:
                problems.append(f"{implementation.__name__}.{name} lacks parameter {parameter.name!r}")
            elif match.kind != parameter.kind and match.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
                problems.append(f"{implementation.__name__}.{name}: {parameter.name!r} is {match.kind}, not {parameter.kind}")
            elif parameter.default is not inspect.Parameter.empty and match.default is inspect.Parameter.empty:
                problems.append(f"{implementation.__name__}.{name}: {parameter.name!r} must be optional")
        for extra in have.parameters.values():
            if extra.name != "self" and extra.name not in wanted.parameters:
                if extra.default is inspect.Parameter.empty and extra.kind not in (
                    inspect.Parameter.VAR_POSITIONAL,
                    inspect.Parameter.VAR_KEYWORD,
                ):
                    problems.append(f"{implementation.__name__}.{name} requires {extra.name!r}, which callers never pass")
    return problems


@pytest.mark.parametrize("implementation", [Engine, Runtime, EngineDouble, RemoteEngine], ids=lambda cls: cls.__name__)
def test_engines_and_the_runtime_meet_the_engine_handle(implementation):
    assert signature_problems(EngineHandle, implementation) == []


@pytest.mark.parametrize("implementation", [Engine, Runtime], ids=lambda cls: cls.__name__)
def test_engine_and_runtime_can_be_started_and_stopped_by_a_front_end(implementation):
    assert signature_problems(EngineLifecycle, implementation) == []


def test_the_runtime_forwards_nothing_it_does_not_declare():
    assert "__getattr__" not in vars(Runtime)
    missing = [name for name in protocol_methods(EngineHandle) if name not in vars(Runtime)]
    assert missing == []


def test_the_app_is_the_screens_host():
    from tmtool.screens.app import TmtoolApp

    assert signature_problems(ScreenHost, TmtoolApp) == []
    app = snapshot_app()
    attributes = [name for name in ScreenHost.__annotations__ if not hasattr(app, name)]
    assert attributes == []


def test_the_checker_notices_a_missing_method_and_a_renamed_parameter():
    class Incomplete:
        def submit(self, order) -> None: ...

    problems = signature_problems(EngineHandle, Incomplete)
    assert "Incomplete.submit lacks parameter 'command'" in problems
    assert "Incomplete.snapshot is missing" in problems
