"""Makes this folder the package ``harness.scenarios`` (pyproject.toml, ``package-dir``), so that
``importlib.resources`` finds the shipped scenarios in a clone and in an installed wheel alike.
A regular package, not a namespace one: editable installs cannot map a namespace package to a
folder outside its parent (docs/decisions.md, "Shipped files")."""
