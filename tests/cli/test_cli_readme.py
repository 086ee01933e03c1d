"""The README's command lines for the SDK calls, run as written (read from the README's
"`outlit send` and the other calls" block) against a local collector on 127.0.0.1.

Lines with ``|`` or ``...`` stand for several commands and are not run; the test checks that
the others cover one call of each kind.
"""

from __future__ import annotations

import shlex

SECTION = ["## The `outlit` command", "### `outlit send` and the other calls"]


def readme_commands(readme_blocks) -> list[list[str]]:
    """Each complete command line of the section's first block, as argv after ``outlit``."""
    joined = readme_blocks(SECTION, "bash")[0].replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        if "|" in line or "..." in line:
            continue
        argv = shlex.split(line)
        assert argv[0] == "outlit", line
        commands.append(argv[1:])
    return commands


def test_each_documented_call_is_stored_as_written(collector, run_outlit, readme_blocks):
    commands = readme_commands(readme_blocks)
    assert [argv[0] for argv in commands] == ["send", "identify", "user", "customer"]

    for argv in commands:
        done = run_outlit(*argv, OUTLIT_PUBLIC_KEY="pk_readme", OUTLIT_API_HOST=collector.url)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert done.stdout.startswith("delivered "), done.stdout

    sent, identified, activated, paid = reversed(collector.events(limit=10))
    assert sent["eventName"] == "report_exported"
    assert sent["properties"] == {"format": "pdf", "rowCount": 1500}
    assert identified["traits"] == {"name": "Jane Doe"}
    assert identified["customerTraits"] == {"plan": "enterprise", "seats": 50}
    assert (activated["stage"], activated["properties"]["flow"]) == ("activated", "onboarding")
    assert (paid["status"], paid["customerId"], paid["properties"]) == (
        "paid",
        "cust_123",
        {"amount": 99},
    )
