"""The test suite is one package, which ``python -m twisted.trial tests`` and pytest both run.

trial finds test modules only inside packages, and reports a module that fails to import
as one error (its dry run, ``-n``, even counts it as passed); pytest would still run a
directory without ``__init__.py`` through its own ``sys.path`` insertion. These tests
catch both drifts: a suite directory missing its ``__init__.py``, and a test module that
imports under pytest but not under trial (a helper imported by bare name, say, instead
of ``from tests.integration.clients import ...``).
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial import runner
from twisted.trial.unittest import SynchronousTestCase

import tests

TESTS = Path(tests.__file__).resolve().parent


def _flatten(suite) -> list:
    """Every test (or error holder) in a nested trial suite."""
    found = []
    for item in suite:
        found.extend(_flatten(item) if hasattr(item, "__iter__") else [item])
    return found


def _module_name(path: Path) -> str:
    return ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts))


class PackageTests(SynchronousTestCase):
    """Every test module is in the ``tests`` package and imports there."""

    def test_every_directory_with_tests_is_a_package(self):
        missing = sorted({
            str((TESTS / directory).relative_to(TESTS.parent))
            for module in TESTS.rglob("test_*.py")
            for directory in module.relative_to(TESTS).parents
            if not (TESTS / directory / "__init__.py").exists()
        })
        self.assertEqual(missing, [], "directories of test modules without __init__.py (trial would skip them)")

    def test_trial_loads_every_test_module(self):
        suite = runner.TestLoader().loadPackage(tests, recurse=True)
        loaded = _flatten(suite)
        failures = [(item.description, repr(item.error[1])) for item in loaded if isinstance(item, runner.ErrorHolder)]
        self.assertEqual(failures, [], "test modules trial cannot import")
        on_disk = {_module_name(path) for path in TESTS.rglob("test_*.py")}
        with_tests = {type(item).__module__ for item in loaded}
        self.assertEqual(sorted(on_disk - with_tests), [], "test modules in which trial found no test")
