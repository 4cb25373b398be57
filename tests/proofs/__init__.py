"""Proofs that every scenario can fail (DESIGN.md: "a check that cannot fail is a defect").

Each scenario runs against the XMPP test double twice or more: correct (the verdict must be
``pass``) and with a flaw that breaks the scenario's rule (the verdict must be ``fail``, caught
at the step that checks that rule). See ``test_can_fail.py``.
"""
