"""One options table: ``twistd cherrychat --help`` and the README's table say the same
options with the same defaults, each default stated once, in the settings it configures."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from cherrychat.tap import DEFAULT_LISTEN, Options

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| (`--[^|]*) \| ([^|]*) \|")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: what the README writes for an option that is off unless given
ABSENT = {"off", "none", "the daemon's own"}


def readme_rows() -> list[tuple[list[str], str]]:
    """(option names, default cell) of every row of the README's options table."""
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            names = re.findall(r"`--([a-z0-9-]+)", match.group(1))
            rows.append((names, match.group(2).strip()))
    return rows


def option_defaults() -> dict[str, object]:
    """Every option of ``twistd cherrychat`` and its default (flags: ``None``)."""
    options = Options()
    defaults: dict[str, object] = {name: default for name, _, default, *_ in options.optParameters}
    defaults.update({flag[0]: None for flag in options.optFlags})
    for method in dir(options):
        if method.startswith("opt_") and method not in ("opt_help", "opt_version"):
            defaults.setdefault(method[4:].replace("_", "-"), None)
    defaults["listen"] = DEFAULT_LISTEN
    return defaults


def shown(value: object) -> str:
    """A default as the README writes it: 10.0 is 10."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class OptionsTableTests(SynchronousTestCase):
    def test_every_option_is_in_the_readme_and_every_readme_option_exists(self) -> None:
        documented = {name for names, _ in readme_rows() for name in names}
        self.assertEqual(sorted(set(option_defaults()) - documented), [], "options missing from the README")
        self.assertEqual(sorted(documented - set(option_defaults())), [], "README options that do not exist")

    def test_the_readme_states_each_default_as_the_options_do(self) -> None:
        defaults = option_defaults()
        for names, cell in readme_rows():
            values = [defaults[name] for name in names]
            if all(value is None for value in values):
                self.assertIn(cell, ABSENT, names)
            elif all(isinstance(value, (int, float)) for value in values):
                self.assertEqual(NUMBER.findall(cell), [shown(v) for v in values], names)
            else:
                self.assertEqual(cell, " ".join(f"`{shown(v)}`" for v in values), names)

    def test_help_lists_every_option_with_its_default(self) -> None:
        # --help wraps its text: compare with the whitespace folded.
        text = " ".join(str(Options()).split())
        for name, default in option_defaults().items():
            self.assertIn(f"--{name}", text)
            if default is not None and name != "listen":
                self.assertIn(f"[default: {default}]", text, name)
