"""Test doubles for the harness's own tests: small servers that misbehave on purpose.

They are never targets of the matrix (DESIGN.md: no mock server stands in for a product); they
exist so that the harness's tests can prove that every scenario *can* fail.

``xmpp_server``  an asyncio XMPP server, correct by default, with named flaws (``FLAWS``); its
                 concerns and services are the other ``xmpp_*`` modules (see its documentation)
``target``       a ``RunningTarget`` around a running double, and a context manager to start one
``saslprep``     RFC 4013 SASLprep, written independently of the harness's own
"""
