"""README.md's "Testing your integration" examples, run as written (read from the README: see
tests/conftest.py): the recording blocks in this process, the pytest fixture blocks as a
user's test suite of their own (pytester), with the README's conftest block as its conftest.

The fixture blocks' clients name no host: OUTLIT_API_HOST points them at a closed loopback port,
so that nothing could leave 127.0.0.1 even if recording failed. Not run here: the Django block
(settings, views and tests in one block, for a project with pytest-django;
test_testing_plugin.py runs the same test in a project of its own).
"""

from __future__ import annotations

import pytest

from outlit import Outlit
from outlit.testing import _on_new_clients

pytest_plugins = ["pytester"]

PLUGIN_ARGS = ("-p", "outlit.pytest_plugin", "-p", "no:cacheprovider")
FIXTURES = ["## Testing your integration", "### pytest fixtures"]


def upgrade_plan(client: Outlit, email: str, plan: str) -> None:
    """The "your code" of the recording example."""
    client.track(event_name="subscription_upgraded", email=email, properties={"toPlan": plan})


def downgrade_plan(client: Outlit, email: str, plan: str) -> None:
    """Code the example's assertion must catch: the wrong event."""
    client.track(event_name="subscription_downgraded", email=email, properties={"toPlan": plan})


def test_the_recording_examples_pass_and_catch_the_wrong_event(
    readme_blocks, run_readme_block, monkeypatch
):
    recording, transport = readme_blocks(["## Testing your integration", "### Recording a client"])
    # The blocks' clients name no host: a closed loopback port, should one ever send.
    monkeypatch.setenv("OUTLIT_API_HOST", "http://127.0.0.1:9")
    made: list[Outlit] = []

    with _on_new_clients(made.append):
        try:
            module = run_readme_block("readme_record", recording, upgrade_plan=upgrade_plan)
            module.test_upgrade_is_tracked()
            wrong = run_readme_block("readme_record_wrong", recording, upgrade_plan=downgrade_plan)
            with pytest.raises(AssertionError, match="subscription_upgraded"):
                wrong.test_upgrade_is_tracked()
            # The second block asserts on what its RecordingTransport got.
            run_readme_block("readme_recording_transport", transport, Outlit=Outlit)
            # Each block shuts its client down: a suite does not pile up worker threads.
            assert [client.closed for client in made] == [True, True, True]
        finally:
            for client in made:
                client.shutdown(timeout=2)
    assert len(made) == 3


@pytest.mark.slow
def test_the_fixture_examples_pass_as_a_users_suite(
    readme_blocks, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("outlit_flask", reason="needs Flask, from the outlit[flask] extra")
    pytest.importorskip("outlit_fastapi", reason="needs FastAPI, from the outlit[fastapi] extra")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("OUTLIT_API_HOST", "http://127.0.0.1:9")  # closed: see the docstring
    (conftest,) = readme_blocks(FIXTURES)
    (flask,) = readme_blocks([*FIXTURES, "#### Flask"])
    (fastapi,) = readme_blocks([*FIXTURES, "#### FastAPI"])
    (collector,) = readme_blocks([*FIXTURES, "#### Against the local collector"])
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_flask=flask, test_fastapi=fastapi)
    pytester.makepyfile(test_outage=collector)  # under the same autouse conftest

    result = pytester.runpytest_subprocess(*PLUGIN_ARGS)

    result.assert_outcomes(passed=3)
