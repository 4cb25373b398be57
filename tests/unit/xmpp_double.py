"""Moved: the XMPP server double lives in :mod:`tests.doubles.xmpp_server` (one double for the
actor unit tests and for the proofs that every scenario can fail). Re-exported for old imports."""

from tests.doubles.xmpp_server import DoubleConfig, Pki, XmppDouble, make_pki

__all__ = ["DoubleConfig", "Pki", "XmppDouble", "make_pki"]
