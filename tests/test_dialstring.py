"""The validating builder: every value on its way to an ESL command or a SIP header."""
import pytest

from controller.esl.commands import bridge_string, event_plain, multiset_before_bridge
from controller.esl.values import (DialStringError, format_number, normalise_number, safe_app_arg, validate_codecs,
                                   validate_dtmf, validate_e164, validate_gateway, validate_header_name,
                                   validate_header_value, validate_uuid)

UUID = "16161616-0000-4000-8000-000000000001"
HOSTILE = [
    "a,b", "a'b", 'a"b', "a{b", "a}b", "a[b", "a]b", "a^b", "a|b", "${destroy}", "a$b", "a\\b",
    "a\rb", "a\nb", "a\r\nX-Evil: 1", "a\x00b", "a\tb", "caf\u00e9", "\u202eevil", "\U0001f600",
    " leading", "trailing ", "", "x" * 257,
]


@pytest.mark.parametrize("country,number,expected", [
    ("FR", "01 23 45 67 89", "+33123456789"),
    ("fr", "06.12.34.56.78", "+33612345678"),
    ("FR", "+33 1 70 36 39 50", "+33170363950"),
    (None, "+32 2 513 89 40", "+3225138940"),
    ("CH", "044 668 18 00", "+41446681800"),
    ("BE", "(04) 221-92-21", "+3242219221"),
])
def test_a_national_or_international_number_becomes_e164(country, number, expected):
    assert normalise_number(country, number) == expected


@pytest.mark.parametrize("country,number,reason", [
    ("FR", "0123", "too short for FR"),
    ("FR", "0899123456789", "too long for FR"),
    ("FR", "01 00 00 00 0", "not a valid number for FR"),
    ("XX", "0123456789", "not an ISO 3166 alpha-2 country code"),
    (None, "0123456789", "needs a country"),
    ("FR", "01 23 45 67 89\n", "must be digits"),
    ("FR", "01 23 45 67 89,0", "must be digits"),
    ("FR", "0800${x}", "must be digits"),
    ("FR", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669", "must be digits"),
    ("FR", "1" * 41, "must be digits"),
])
def test_a_bad_number_is_refused_with_the_reason(country, number, reason):
    with pytest.raises(DialStringError) as caught:
        normalise_number(country, number)
    assert reason in str(caught.value)


def test_an_e164_number_must_be_written_exactly():
    assert validate_e164("+33100000001") == "+33100000001"
    for bad in ("33123456789", "+33 1 23 45 67 89", "+0123456789", "+3312345678901234", "+331"):
        with pytest.raises(DialStringError):
            validate_e164(bad)


def test_a_header_name_is_x_dash_then_letters_digits_and_dashes():
    assert validate_header_name("X-Call-Reason") == "X-Call-Reason"
    for bad in ("Call-Reason", "X-", "X-a b", "X-a_b", "X-" + "a" * 65, "X-Foo\r\n", "x-foo", 42):
        with pytest.raises(DialStringError):
            validate_header_name(bad)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_header_value_is_refused(value):
    with pytest.raises(DialStringError) as caught:
        validate_header_value(value)
    assert caught.value.field == "header value"


def test_a_plain_header_value_passes_unchanged():
    for value in ("support", "order 42", "a=b;c=d", "x" * 256, "+33123456789", "<sip:a@b>"):
        assert validate_header_value(value) == value


def test_dtmf_allows_digits_star_hash_a_to_d_pauses_and_a_tone_length():
    assert validate_dtmf("0123456789*#ABCDwW") == "0123456789*#ABCDwW"
    assert validate_dtmf("12@200") == "12@200" and validate_dtmf("1" * 99) == "1" * 99
    for bad in ("", "1 2", "e", "a", "x", "1\n", "12@", "12@5", "12@9000", "@200", "1@2@3", "1" * 100, "${x}"):
        with pytest.raises(DialStringError):
            validate_dtmf(bad)


def test_gateway_and_uuid_are_checked_before_they_reach_a_command():
    assert validate_gateway("trunk_main.eu-1") == "trunk_main.eu-1"
    assert validate_uuid(UUID) == UUID
    for bad in ("trunk main", "gw/other", "gw,x", "", "g" * 65):
        with pytest.raises(DialStringError):
            validate_gateway(bad)
    for bad in ("not-a-uuid", UUID + "0", UUID.replace("-", ""), UUID + "\n"):
        with pytest.raises(DialStringError):
            validate_uuid(bad)


@pytest.mark.parametrize("text", ["line\nbreak", "carriage\rreturn", "nul\x00byte", "expand ${sofia_contact(x)}"])
def test_an_app_argument_cannot_end_the_frame_or_expand(text):
    with pytest.raises(DialStringError):
        safe_app_arg(text)


def test_an_app_argument_may_hold_any_other_text():
    text = "Bonjour, ça coûte 5 $ {ok} [vraiment] | \U0001f600"
    assert safe_app_arg(text) == text


def test_codecs_are_names_separated_by_commas():
    assert validate_codecs("PCMU, PCMA,opus@48000h@20i") == ["PCMU", "PCMA", "opus@48000h@20i"]
    for bad in ("", "PCMU,,PCMA", "PCMU;PCMA", "PCMU PCMA"):
        with pytest.raises(DialStringError):
            validate_codecs(bad)


def test_the_bridge_string_is_exactly_what_capture_16_sent():
    # sent on the wire in /work/shared/esl-captures/16-outbound-bridge-sip-gateway-outcomes.txt
    wire = ("{ignore_early_media=true,origination_uuid=16161616-0000-4000-8000-000000000001}"
            "[leg_timeout=6,sip_h_X-Test=abc,sip_h_X-Call-Reason=support]sofia/gateway/sbtest/+33100000001")
    built = bridge_string("+33100000001", "sbtest", "e164", 6, UUID,
                          [("X-Test", "abc"), ("X-Call-Reason", "support")])
    assert built == wire


def test_the_bridge_string_carries_caller_id_codecs_and_the_gateway_number_format():
    built = bridge_string("+33123456789", "trunk", "e164_no_plus", 20, UUID, [],
                          caller_id_number="+33184808080", codecs="PCMU,PCMA")
    assert built == ("{ignore_early_media=true,origination_uuid=" + UUID + ",origination_caller_id_number=+33184808080,"
                     "absolute_codec_string=^^:PCMU:PCMA}[leg_timeout=20]sofia/gateway/trunk/33123456789")


@pytest.mark.parametrize("value", HOSTILE)
def test_the_bridge_string_refuses_a_hostile_header_value(value):
    with pytest.raises(DialStringError):
        bridge_string("+33123456789", "trunk", "e164", 20, UUID, [("X-Customer-Id", value)])


@pytest.mark.parametrize("kwargs", [
    {"target_e164": "+33 1 23 45 67 89"}, {"target_e164": "0123456789"}, {"gateway": "trunk/../x"},
    {"leg_timeout_s": 0}, {"leg_timeout_s": True}, {"leg_timeout_s": 20.5}, {"origination_uuid": "u"},
    {"number_format": "national"}, {"caller_id_number": "anonymous"}, {"codecs": "PCMU|PCMA"},
    {"headers": [("X-A", "1"), ("x-a", "2")]}, {"headers": [("Contact", "x")]},
])
def test_the_bridge_string_refuses_any_bad_part(kwargs):
    args = {"target_e164": "+33123456789", "gateway": "trunk", "number_format": "e164", "leg_timeout_s": 20,
            "origination_uuid": UUID, "headers": []}
    with pytest.raises(DialStringError):
        bridge_string(**{**args, **kwargs})


def test_copying_caller_headers_is_decided_on_the_caller_leg():
    assert multiset_before_bridge(False).arg == (
        "continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers=false")
    assert multiset_before_bridge(True).arg.endswith("sip_copy_custom_headers=true")


def test_a_number_is_formatted_as_the_gateway_wants():
    assert format_number("+33123456789", "e164") == "+33123456789"
    assert format_number("+33123456789", "e164_no_plus") == "33123456789"


def test_a_dial_string_error_names_the_field_the_value_and_the_reason():
    with pytest.raises(DialStringError) as caught:
        validate_header_value("a|b", field="header X-Test")
    error = caught.value
    assert (error.field, error.value) == ("header X-Test", "a|b")
    assert str(error) == "header X-Test: contains '|', which a dial string does not allow (got 'a|b')"
    assert isinstance(error, ValueError)


def test_event_subscriptions_take_the_names_the_configuration_accepts_and_nothing_that_ends_the_line():
    assert event_plain(["CHANNEL_HOLD", "CUSTOM avmd::beep avmd::start"]) == \
        "event plain CHANNEL_HOLD CUSTOM avmd::beep avmd::start"
    for bad in (["CHANNEL_HOLD\nexit"], ["channel_hold"], ["CUSTOM avmd::beep\r"], []):
        with pytest.raises(DialStringError):
            event_plain(bad)
