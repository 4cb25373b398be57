"""Where the files that ship with the harness are: scenarios, target catalogue, baselines, profiles.

They stay at the top of the repository (``scenarios/``, ``fixtures/``) and ship inside the
package as ``harness.scenarios`` and ``harness.fixtures`` (pyproject.toml, ``package-dir``), so
``importlib.resources`` finds them the same way in a clone (editable install) and in an
installed wheel, whatever folder the harness runs from (docs/decisions.md, "Shipped files").
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder(package: str, *parts: str) -> Path:
    """A shipped folder as a real path: pytest, docker builds and Jinja need files, not a zip."""
    folder = resources.files(package).joinpath(*parts)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package} is not installed as files ({folder!r}); install the harness unzipped")
    return folder


SCENARIOS = _folder("harness.scenarios")
CATALOGUE = _folder("harness.fixtures", "targets")  # the built-in products; --catalogue adds more
BASELINES = _folder("harness.fixtures", "baselines")  # <product>.yaml known failures
PROFILES = _folder("harness.fixtures", "profiles")
