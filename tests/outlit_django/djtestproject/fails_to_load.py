"""A module of the app's own that raises something other than ImportError as it loads."""

from __future__ import annotations

identity = transport = undefined_name  # type: ignore[name-defined]  # noqa: F821
