"""The names users type: ``outlit.__all__``, the option TypedDicts, the exception tree, the
typing marker, and what ``import outlit`` costs."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
import typing
import zipfile
from pathlib import Path

import pytest

import outlit
from outlit import (
    BillingOptions,
    BoundTracker,
    ClientClosedError,
    CustomerAPI,
    InvalidEventError,
    OptionError,
    Outlit,
    OutlitError,
    OutlitOptions,
    ServerIdentifyOptions,
    ServerTrackOptions,
    StageOptions,
    UserAPI,
)


def isort_style(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then the rest.
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_without_duplicates():
    assert outlit.__all__ == sorted(outlit.__all__, key=isort_style)
    assert len(set(outlit.__all__)) == len(outlit.__all__)


@pytest.mark.parametrize("name", outlit.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(outlit, name) is not None


def test_every_public_module_attribute_is_exported():
    import types

    public = {
        name
        for name, value in vars(outlit).items()
        # Submodules appear as attributes once imported (pytest loads outlit.pytest_plugin),
        # and pytest's assertion rewriting adds "@py_builtins"-style names.
        if not name.startswith(("_", "@"))
        and name not in {"annotations", "TYPE_CHECKING"}
        and not isinstance(value, types.ModuleType)
    }
    # Lazily loaded names appear in vars() once used; every one of them must be in __all__.
    assert public <= set(outlit.__all__) | {"signals", "testing"}


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = outlit.no_such_thing


def test_signals_module_is_reachable_as_an_attribute():
    assert outlit.signals.batch_delivered is not None
    assert {"batch_delivered", "batch_failed", "events_dropped"} <= set(dir(outlit.signals))


def test_version_matches_the_installed_distribution():
    assert outlit.__version__ == importlib.metadata.version("outlit")


def test_exceptions_are_the_builtin_kinds_the_spec_promises():
    assert issubclass(InvalidEventError, ValueError)
    assert issubclass(OptionError, ValueError)
    assert issubclass(ClientClosedError, RuntimeError)
    for error in (InvalidEventError, OptionError, ClientClosedError):
        assert issubclass(error, OutlitError)


# -- TypedDicts mirror the keyword arguments ---------------------------------------------------


def keyword_arguments(function: object) -> set[str]:
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return {p.name for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD}


@pytest.mark.parametrize(
    ("typed_dict", "methods"),
    [
        (OutlitOptions, [Outlit.__init__]),
        (ServerTrackOptions, [Outlit.track]),
        (ServerIdentifyOptions, [Outlit.identify]),
        (StageOptions, [UserAPI.activate, UserAPI.engaged, UserAPI.inactive]),
        (BillingOptions, [CustomerAPI.trialing, CustomerAPI.paid, CustomerAPI.churned]),
    ],
    ids=lambda v: getattr(v, "__name__", "methods"),
)
def test_typed_dict_keys_are_the_keyword_arguments(typed_dict, methods):
    assert typing.is_typeddict(typed_dict)
    keys = set(typed_dict.__required_keys__) | set(typed_dict.__optional_keys__)
    for method in methods:
        assert keys == keyword_arguments(method), method.__qualname__


def test_typed_dict_required_keys_are_the_arguments_without_default():
    for typed_dict, method in [
        (ServerTrackOptions, Outlit.track),
        (ServerIdentifyOptions, Outlit.identify),
        (StageOptions, UserAPI.activate),
        (BillingOptions, CustomerAPI.paid),
        (OutlitOptions, Outlit.__init__),
    ]:
        no_default = {
            p.name
            for p in inspect.signature(method).parameters.values()
            if p.name != "self" and p.default is p.empty
        }
        assert set(typed_dict.__required_keys__) == no_default, typed_dict.__name__


def test_typed_dict_can_be_splatted_into_its_method():
    transport = outlit.MockTransport()
    options: OutlitOptions = {"public_key": "pk_typed", "transport": transport}
    client = Outlit(**options)
    try:
        track: ServerTrackOptions = {"event_name": "e", "email": "a@x.com"}
        stage: StageOptions = {"user_id": "u1"}
        billing: BillingOptions = {"customer_domain": "acme.com"}
        identify: ServerIdentifyOptions = {"email": "a@x.com"}
        client.track(**track)
        client.user.activate(**stage)
        client.customer.paid(**billing)
        client.identify(**identify)
        assert client.flush(timeout=5)
        assert [e["type"] for e in transport.events] == ["custom", "stage", "billing", "identify"]
    finally:
        client.shutdown()


def test_bound_tracker_has_every_tracking_method_of_the_client():
    client = Outlit(public_key="pk_x", transport=outlit.MockTransport())
    try:
        tracker = client.bind({})
        assert isinstance(tracker, BoundTracker)
        for name in ("track", "identify", "flush", "aflush"):
            assert callable(getattr(tracker, name))
        for name in ("identify", "activate", "engaged", "inactive"):
            assert callable(getattr(tracker.user, name))
        for name in ("trialing", "paid", "churned"):
            assert callable(getattr(tracker.customer, name))
        assert tracker.queue_size == 0
    finally:
        client.shutdown()


def test_every_tracking_argument_is_keyword_only():
    for method in [
        Outlit.track,
        Outlit.identify,
        UserAPI.activate,
        UserAPI.engaged,
        UserAPI.inactive,
        CustomerAPI.trialing,
        CustomerAPI.paid,
        CustomerAPI.churned,
    ]:
        for parameter in list(inspect.signature(method).parameters.values())[1:]:
            assert parameter.kind is parameter.KEYWORD_ONLY, (method.__qualname__, parameter)


# -- packaging ---------------------------------------------------------------------------------


def test_package_ships_py_typed():
    package_dir = Path(outlit.__file__).parent
    assert (package_dir / "py.typed").is_file()


def test_built_wheel_contains_py_typed(tmp_path):
    root = Path(outlit.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("outlit is installed from a wheel here, not a source checkout")
    builders = pytest.importorskip("hatchling.builders.wheel", reason="hatchling builds the wheel")
    (wheel,) = builders.WheelBuilder(str(root)).build(
        directory=str(tmp_path), versions=["standard"]
    )
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for package in ("outlit", "outlit_django", "outlit_flask", "outlit_fastapi"):
        assert f"{package}/py.typed" in names
    # The collector's viewer page is data, not code: it must still ship.
    assert "outlit/_collector/page.html" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names


def test_built_sdist_holds_what_builds_and_runs_the_package_and_nothing_else(tmp_path):
    import tarfile

    root = Path(outlit.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("outlit is installed from a wheel here, not a source checkout")
    builders = pytest.importorskip("hatchling.builders.sdist", reason="hatchling builds the sdist")
    (sdist,) = builders.SdistBuilder(str(root)).build(
        directory=str(tmp_path), versions=["standard"]
    )
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "hatch_build.py",
        "pyproject.toml",
        "outlit/_speedups.c",
        "outlit/_collector/page.html",
        "outlit_django/management/commands/outlit.py",
    ):
        assert needed in names, needed
    # No tests (they need the checkout's examples and specs), no stray example READMEs, no
    # module compiled for some Python, no caches.
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]
    assert not [n for n in names if n.endswith((".so", ".pyc", ".pyd"))]


def test_import_outlit_stays_light():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import outlit\n"
        "new = set(sys.modules) - before\n"
        "heavy = [m for m in ('httpx', 'blinker', 'logging', 'typing') if m in new]\n"
        "print(outlit.__file__)\n"
        "print(','.join(heavy))\n"
    )
    root = Path(outlit.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-E", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=root,
    )
    imported_from, heavy = result.stdout.splitlines()
    assert Path(imported_from).resolve() == Path(outlit.__file__).resolve()
    assert heavy == "", f"`import outlit` imported {heavy}"
