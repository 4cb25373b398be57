"""Structural matching of stream elements (harness.protocols.xmpp.match)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from harness.protocols.xmpp.match import (
    NS_MATCH,
    AnyOf,
    PatternError,
    alternatives,
    closed_event,
    compile_match,
    compile_pattern,
    not_well_formed_event,
    summarize,
)

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STREAM_DECL = "xmlns:stream='http://etherx.jabber.org/streams'"


def received(text: str) -> ET.Element:
    """Parse an element as it would arrive on a client stream (default namespace jabber:client)."""
    root = ET.fromstring(f"<stream:stream xmlns='jabber:client' {STREAM_DECL}>{text}</stream:stream>")
    return root[0]


FEATURES = received(
    f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>SCRAM-SHA-1</mechanism>"
    "<mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
)
FEATURES_NO_PLAIN = received(
    f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>SCRAM-SHA-1</mechanism>"
    "</mechanisms></stream:features>"
)


def test_features_with_mechanism_present() -> None:
    p = compile_pattern(
        f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    )
    assert p.matches(FEATURES)
    assert not p.matches(FEATURES_NO_PLAIN)
    reason = p.explain(FEATURES_NO_PLAIN)
    assert f"missing child {{{SASL}}}mechanism with text 'PLAIN'" in reason
    assert "SCRAM-SHA-1" in reason  # says what was there instead
    assert "\n" not in reason
    assert p.explain(FEATURES) == "matches"


def test_mechanism_absent() -> None:
    p = compile_pattern(
        f"""<stream:features>
              <mechanisms xmlns='{SASL}'>
                <mechanism m:absent='true'>PLAIN</mechanism>
              </mechanisms>
            </stream:features>"""
    )
    assert p.matches(FEATURES_NO_PLAIN)
    assert not p.matches(FEATURES)
    assert "unexpected child" in p.explain(FEATURES) and "PLAIN" in p.explain(FEATURES)
    # absent is about children that match: no <mechanisms> at all still satisfies "no PLAIN"
    # only if the mechanisms container exists, so a features without mechanisms fails on it
    assert not p.matches(received("<stream:features/>"))


def test_children_are_unordered_and_independent() -> None:
    p = compile_pattern(
        f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>PLAIN</mechanism>"
        "<mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
    )
    assert p.matches(FEATURES)


def test_attribute_values_and_wildcards() -> None:
    iq = received(
        "<iq type='result' id='bind1' to='a@b.test/r'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
    )
    assert compile_pattern("<iq type='result' id='bind1'/>").matches(iq)
    assert compile_pattern("<iq type='result' to='*'/>").matches(iq)
    assert not compile_pattern("<iq type='result' from='*'/>").matches(iq)
    assert "missing attribute from" in compile_pattern("<iq from='*'/>").explain(iq)
    p = compile_pattern("<iq type='error'/>")
    assert not p.matches(iq)
    assert p.explain(iq) == "attribute type is 'result', expected 'error'"
    assert compile_pattern("<m:any type='result'/>").matches(iq)
    assert compile_pattern("<iq><m:any xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'/></iq>").matches(iq)
    assert not compile_pattern("<message/>").matches(iq)
    assert "expected {jabber:client}message" in compile_pattern("<message/>").explain(iq)


def test_text_rules() -> None:
    msg = received("<message type='chat'><body>  hello there  </body></message>")
    assert compile_pattern("<message><body>hello there</body></message>").matches(msg)
    assert compile_pattern("<message><body>*</body></message>").matches(msg)
    assert not compile_pattern("<message><body>hello</body></message>").matches(msg)
    assert compile_pattern("<message><body m:text-contains='lo th'/></message>").matches(msg)
    assert not compile_pattern("<message><body m:text-contains='bye'/></message>").matches(msg)
    empty = received("<message><body/></message>")
    assert not compile_pattern("<message><body>*</body></message>").matches(empty)


def test_namespaces_sasl_failure() -> None:
    failure = received(f"<failure xmlns='{SASL}'><not-authorized/><text>bad</text></failure>")
    p = compile_pattern(f"<failure xmlns='{SASL}'><not-authorized/></failure>")
    assert p.matches(failure)
    # the same local names in the client namespace are different elements
    assert not compile_pattern("<failure><not-authorized/></failure>").matches(failure)
    other = received(f"<failure xmlns='{SASL}'><aborted/></failure>")
    assert not p.matches(other)
    assert f"missing child {{{SASL}}}not-authorized" in p.explain(other)


def test_stream_error() -> None:
    err = received(
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too many</text></stream:error>"
    )
    p = compile_pattern(
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    )
    assert p.matches(err)
    assert compile_pattern("<stream:error><m:any/></stream:error>").matches(err)
    assert not compile_pattern(
        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    ).matches(err)
    assert compile_pattern(
        "<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' m:text-contains='many'/></stream:error>"
    ).matches(err)


def test_nested_explain_descends() -> None:
    p = compile_pattern(
        f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>"
    )
    reason = p.explain(FEATURES)
    assert reason.startswith(
        f"in child {{{SASL}}}mechanisms: missing child {{{SASL}}}mechanism with text 'EXTERNAL'"
    )


def test_closed_events() -> None:
    p = compile_pattern("<m:closed/>")
    assert p.matches(closed_event("stream"))
    assert p.matches(closed_event("connection"))
    assert compile_pattern("<m:closed what='connection'/>").matches(closed_event("connection"))
    assert not compile_pattern("<m:closed what='connection'/>").matches(closed_event("stream"))
    assert not p.matches(received("<iq/>"))
    assert compile_pattern("<m:not-well-formed/>").matches(not_well_formed_event("junk"))
    assert closed_event("stream").tag == f"{{{NS_MATCH}}}closed"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<iq", "not well-formed"),
        ("<iq></message>", "mismatched tag"),
        ("", "empty pattern"),
        ("<iq/><iq/>", "exactly one element, found 2"),
        ("hello <iq/>", "text outside"),
        ("<x:iq/>", "unbound prefix"),
        ("<iq m:absnt='true'/>", "unknown matcher directive m:absnt"),
        ("<m:clsoed/>", "unknown matcher element m:clsoed"),
        ("<iq m:absent='true'/>", "m:absent is for children"),
        ("<iq><a m:absent='maybe'/></iq>", "m:absent must be"),
        ("<?xml version='1.0'?><iq/>", "XML declaration"),
    ],
)
def test_bad_patterns(text: str, fragment: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(text)
    assert fragment in str(info.value)


def test_error_position_is_relative_to_the_pattern() -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern("<iq><a></b></iq>")
    assert "line 1, column 10" in str(info.value)  # at the b of </b>


def test_describe_and_summarize() -> None:
    p = compile_pattern("<iq   type='result'>\n   <query/>\n</iq>")
    assert p.describe() == "<iq type='result'><query/></iq>"
    assert compile_pattern(
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>"
    ).describe() == ("<failure><aborted/></failure>")
    assert len(compile_pattern("<iq id='" + "x" * 500 + "'/>").describe()) <= 160
    assert summarize(FEATURES) == "<stream:features [mechanisms,bind]>"
    assert summarize(closed_event("stream")) == "<m:closed what='stream'>"


# -- a list of patterns: any of them -------------------------------------------------------------


def test_compile_match_list_means_any_of() -> None:
    single = compile_match("<iq type='result'/>")
    assert not isinstance(single, AnyOf) and alternatives(single) == [single]
    assert not isinstance(compile_match(["<iq type='result'/>"]), AnyOf)  # a list of one is that pattern
    both = compile_match(["<iq type='result'/>", "<iq type='error'/>"])
    assert isinstance(both, AnyOf) and len(alternatives(both)) == 2
    assert both.matches(received("<iq type='error' id='1'/>"))
    assert both.matches(received("<iq type='result' id='1'/>"))
    assert not both.matches(received("<iq type='get' id='1'/>"))
    assert both.matching(received("<iq type='error' id='1'/>")) is alternatives(both)[1]
    assert both.describe() == "any of: <iq type='result'/> | <iq type='error'/>"


def test_compile_match_list_errors_name_the_alternative() -> None:
    with pytest.raises(PatternError, match="alternative 2: pattern is not well-formed XML"):
        compile_match(["<iq/>", "<iq"])
    with pytest.raises(PatternError, match="empty list"):
        compile_match([])
    with pytest.raises(PatternError, match="not int"):
        compile_match(42)  # type: ignore[arg-type]


def test_without_attribute_tells_available_from_unavailable_presence() -> None:
    pattern = compile_pattern("<presence from='b@r.test/x' m:without='type'/>")
    assert pattern.matches(received("<presence from='b@r.test/x'><priority>1</priority></presence>"))
    unavailable = received("<presence from='b@r.test/x' type='unavailable'/>")
    assert not pattern.matches(unavailable)
    assert pattern.explain(unavailable) == "attribute type='unavailable' present, expected none"
