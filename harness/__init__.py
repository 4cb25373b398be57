"""Interoperability conformance harness for instant-messaging servers."""

__version__ = "0.1.0"
