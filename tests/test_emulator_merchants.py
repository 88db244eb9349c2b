"""``MultiEmulator``: several merchants at one URL, told apart by their credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from flexcharge_emulator import EmulatorConfig, MultiEmulator
from tests.emulator_helpers import card_body

A = EmulatorConfig(rescue_delay=None, expire_delay=None)
B = EmulatorConfig(
    app_key="b-key",
    app_secret="b-secret",
    mid="0b0b0b0b-1111-4222-8333-444455556666",
    site_id="0b0b0b0b-7777-4888-9999-aaaabbbbcccc",
    tokenization_key="b-tokenization-key",
    rescue_delay=None,
    expire_delay=None,
)


@pytest.fixture
def multi() -> Iterator[MultiEmulator]:
    with MultiEmulator([A, B]) as emulator:
        yield emulator


def token(multi: MultiEmulator, config: EmulatorConfig) -> str:
    answer = requests.post(
        multi.base_url + "oauth2/token",
        json={"AppKey": config.app_key, "AppSecret": config.app_secret},
        timeout=5,
    )
    assert answer.status_code == 200
    return str(answer.json()["accessToken"])


def test_each_merchant_issues_and_accepts_its_own_tokens(multi):
    a, b = multi.merchant(A.mid), multi.merchant(B.mid)
    token_b = token(multi, B)
    assert (a.state.token_requests, b.state.token_requests) == (0, 1)
    answer = requests.post(
        multi.base_url + "transmit",
        json={"orderId": "x"},
        headers={"Authorization": f"Bearer {token_b}"},
        timeout=5,
    )
    assert answer.status_code != 401  # B's token opens B's API (the body is B's to judge)
    assert a.state.transmits == []
    forged = requests.post(
        multi.base_url + "transmit", headers={"Authorization": "Bearer nobody"}, timeout=5
    )
    assert forged.status_code == 401


def test_tokenize_goes_to_the_merchant_of_its_mid(multi):
    answer = requests.post(
        multi.base_url + "tokenize",
        params={"mid": B.mid, "environment": B.tokenization_key},
        json=card_body(),
        timeout=5,
    )
    assert answer.status_code == 200
    assert len(multi.merchant(B.mid).state.tokens) == 1
    assert multi.merchant(A.mid).state.tokens == {}
    # B's mid with A's key: B's vault refuses it.
    wrong = requests.post(
        multi.base_url + "tokenize",
        params={"mid": B.mid, "environment": A.tokenization_key},
        json=card_body(),
        timeout=5,
    )
    assert wrong.status_code >= 400


def test_unknown_app_key_is_refused_and_mids_must_differ(multi):
    answer = requests.post(
        multi.base_url + "oauth2/token", json={"AppKey": "x", "AppSecret": "y"}, timeout=5
    )
    assert answer.status_code == 400
    with pytest.raises(LookupError):
        multi.merchant("nope")
    with pytest.raises(ValueError, match="own MID"):
        MultiEmulator([A, A])
    with pytest.raises(ValueError, match="at least one"):
        MultiEmulator([])


def test_the_control_plane_names_its_merchant(multi):
    from flexcharge_emulator.control import TOKEN_HEADER

    token(multi, B)
    state = requests.get(
        multi.url + "/_emulator/state",
        params={"merchant": B.mid},
        headers={TOKEN_HEADER: B.control_token},
        timeout=5,
    )
    assert state.status_code == 200
    assert state.json()["token_requests"] == 1
    first = requests.get(
        multi.url + "/_emulator/state", headers={TOKEN_HEADER: A.control_token}, timeout=5
    )
    assert first.json()["token_requests"] == 0  # no merchant named: the first one
