"""The Stratum v1 codec: typed messages, strict parsing, never an exception on bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.mining import stratum
from heatgrid.mining.stratum import Malformed, decode, encode

hex4 = st.integers(min_value=0, max_value=0xFFFFFFFF)
hashes = st.binary(min_size=32, max_size=32)
names = st.text(max_size=40)
ids = st.one_of(st.none(), st.integers(min_value=0, max_value=2**31), st.text(max_size=20))

submits = st.builds(
    stratum.Submit,
    id=ids,
    worker=names,
    job_id=names,
    extranonce2=st.binary(min_size=1, max_size=16),
    ntime=hex4,
    nonce=hex4,
    version_bits=st.one_of(st.none(), hex4),
)
notifies = st.builds(
    stratum.Notify,
    job_id=names,
    prevhash=hashes,
    coinbase1=st.binary(max_size=200),
    coinbase2=st.binary(max_size=200),
    merkle_branch=st.lists(hashes, max_size=14).map(tuple),
    version=hex4,
    nbits=hex4,
    ntime=hex4,
    clean_jobs=st.booleans(),
)
others = st.one_of(
    st.builds(stratum.Subscribe, id=ids, user_agent=st.one_of(st.none(), names)),
    st.builds(stratum.Authorize, id=ids, username=names, password=names),
    st.builds(stratum.ExtranonceSubscribe, id=ids),
    st.builds(
        stratum.SuggestDifficulty,
        id=ids,
        difficulty=st.floats(min_value=1e-9, max_value=1e15),
    ),
    st.builds(stratum.SetDifficulty, difficulty=st.floats(min_value=1e-9, max_value=1e15)),
    st.builds(
        stratum.SetExtranonce,
        extranonce1=st.binary(max_size=8),
        extranonce2_size=st.integers(min_value=0, max_value=16),
    ),
    st.builds(stratum.SetVersionMask, mask=hex4),
    st.builds(
        stratum.Configure,
        id=ids,
        extensions=st.just(("version-rolling",)),
        version_rolling_mask=hex4,
        version_rolling_min_bit_count=st.integers(min_value=0, max_value=32),
    ),
    st.builds(
        stratum.Response,
        id=ids,
        result=st.one_of(st.booleans(), st.none()),
        error=st.one_of(
            st.none(), st.builds(stratum.StratumError, code=st.integers(20, 25), message=names)
        ),
    ),
)


@given(st.one_of(submits, notifies, others))
def test_every_message_round_trips(message: stratum.Message) -> None:
    line = encode(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode(line) == message


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(line: bytes) -> None:
    assert isinstance(decode(line), stratum.Message | Malformed)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(
    st.sampled_from(
        [
            "mining.submit",
            "mining.subscribe",
            "mining.authorize",
            "mining.configure",
            "mining.notify",
            "mining.set_difficulty",
            "mining.suggest_difficulty",
            "mining.set_extranonce",
            "mining.set_version_mask",
        ]
    ),
    st.lists(json_values, max_size=10),
)
def test_wrong_params_never_raise(method: str, params: list[object]) -> None:
    line = json.dumps({"id": 7, "method": method, "params": params}).encode()
    assert isinstance(decode(line), stratum.Message | Malformed)


def _reason(line: bytes) -> str:
    message = decode(line)
    assert isinstance(message, Malformed), message
    return message.reason


SUBMIT = '{"id":4,"method":"mining.submit","params":["w","j","0011","679ac169","ff05fb02"%s]}'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": 1, "method": "mining.subscribe"', "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b"[" * 3000 + b"]" * 3000, "not JSON"),
        (b'{"id": 1, "method": "mining.fly", "params": []}', "unknown method 'mining.fly'"),
        (b'{"id": 1, "method": 5}', "method must be a string"),
        (b'{"id": [1], "method": "mining.subscribe"}', "id must be"),
        (b'{"id": 1, "method": "mining.authorize", "params": {}}', "params must be a list"),
        (b'{"id": 1, "method": "mining.submit", "params": ["w"]}', "5 to 6 parameters, got 1"),
        ((SUBMIT % "").replace("0011", "001").encode(), "extranonce2 is not hex"),
        ((SUBMIT % "").replace("0011", "00 1").encode(), "extranonce2 is not hex"),
        ((SUBMIT % "").replace("ff05fb02", "ff05fb0").encode(), "nonce must be 8 hex digits"),
        ((SUBMIT % "").replace("679ac169", "xyzxyzxy").encode(), "ntime is not hex"),
        ((SUBMIT % ',"0e59600"').encode(), "version bits must be 8 hex digits"),
        (b'{"id":1,"method":"mining.suggest_difficulty","params":[NaN]}', "NaN"),
        (b'{"id":1,"method":"mining.suggest_difficulty","params":[true]}', "must be a number"),
        (b'{"id":1,"method":"mining.suggest_difficulty","params":[-2]}', "> 0"),
        (b'{"id": 1}', "needs a method, a result or an error"),
        (b'{"id": 1, "result": null, "error": "bad"}', "error must be"),
    ],
)
def test_malformed_lines_say_what_is_wrong(line: bytes, reason: str) -> None:
    assert reason in _reason(line)


def test_the_request_id_is_kept_for_the_error_answer() -> None:
    message = decode(b'{"id": 42, "method": "mining.fly", "params": []}')
    assert message == Malformed("unknown method 'mining.fly'", 42)


def test_a_line_over_the_cap_is_refused_unparsed() -> None:
    line = b'{"id":1,"method":"mining.subscribe","params":["' + b"a" * 1_000_000 + b'"]}'
    assert _reason(line) == "line longer than 8192 bytes"
    assert isinstance(decode(line, max_line_bytes=2_000_000), Malformed)  # too long a user agent


def test_submit_fields_are_decoded_to_integers_and_bytes() -> None:
    message = decode((SUBMIT % ',"0e596000"').encode())
    assert message == stratum.Submit(4, "w", "j", b"\x00\x11", 0x679AC169, 0xFF05FB02, 0x0E596000)


def test_configure_version_rolling_as_miners_send_it() -> None:
    line = (
        b'{"id":1,"method":"mining.configure","params":[["version-rolling"],'
        b'{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}'
    )
    assert decode(line) == stratum.Configure(1, ("version-rolling",), 0x1FFFE000, 2)
    granted = {"version-rolling": True, "version-rolling.mask": "1fffe000"}
    assert stratum.configure_result(granted) == 0x1FFFE000
    assert stratum.configure_result({"version-rolling": False}) is None
    assert isinstance(stratum.configure_result([]), Malformed)


def test_subscribe_result_reading() -> None:
    result = [[["mining.set_difficulty", "s1"], ["mining.notify", "s1"]], "08000002", 4]
    assert stratum.subscribe_result(result) == stratum.SubscribeResult(b"\x08\x00\x00\x02", 4, "s1")
    bad = stratum.subscribe_result([[], "0800000", 4])
    assert isinstance(bad, Malformed)
    assert "extranonce1" in bad.reason
    assert isinstance(stratum.subscribe_result([[], "08", 0]), Malformed)


def test_error_answers_are_code_message_null() -> None:
    error = stratum.StratumError(stratum.ErrorCode.DUPLICATE_SHARE, "duplicate share")
    line = encode(stratum.Response(9, None, error))
    assert json.loads(line) == {"id": 9, "result": None, "error": [22, "duplicate share", None]}
