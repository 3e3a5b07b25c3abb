"""Credentials: where they come from, and that secrets never show in a repr, a str or a log."""

from __future__ import annotations

import logging

import pytest
from alibabacloud_credentials.client import Client as VendorCredentials
from alibabacloud_credentials.provider import (
    EnvironmentVariableCredentialsProvider,
    StaticSTSCredentialsProvider,
)
from alibabacloud_credentials.utils import auth_util
from flink_helpers import NS, STS_AK, STS_SECRET, STS_TOKEN, WS, sim_and_client

from bot.flink.credentials import Credential, CredentialsProvider, DefaultChainCredentials, StaticCredentials
from bot.flink.errors import FlinkAuthError, FlinkError
from bot.flink.sim import Faults

SECRET = "s3cr3t-Value-That-Must-Not-Leak"
TOKEN = "CAIS-sts-token-that-must-not-leak"


async def test_static_credentials_hide_secret_and_token() -> None:
    provider = StaticCredentials("LTAI-id", SECRET, TOKEN)
    assert isinstance(provider, CredentialsProvider)
    cred = await provider.get()
    assert cred.access_key_secret.get_secret_value() == SECRET
    assert cred.security_token is not None and cred.security_token.get_secret_value() == TOKEN
    for text in (repr(provider), str(provider), repr(cred), str(cred), cred.model_dump_json()):
        assert SECRET not in text
        assert TOKEN not in text
    assert "LTAI-id" in repr(cred)


async def test_long_term_key_has_no_token() -> None:
    cred = await StaticCredentials("id", SECRET).get()
    assert cred.security_token is None and not cred.is_temporary
    assert Credential(access_key_id="id", access_key_secret=SECRET, security_token="").security_token is None


async def test_default_chain_reads_vendor_client() -> None:
    vendor = VendorCredentials(
        provider=StaticSTSCredentialsProvider(
            access_key_id="STS.id", access_key_secret=SECRET, security_token=TOKEN
        )
    )
    cred = await DefaultChainCredentials(vendor).get()
    assert cred.access_key_id == "STS.id"
    assert cred.access_key_secret.get_secret_value() == SECRET
    assert cred.security_token is not None and cred.security_token.get_secret_value() == TOKEN


async def test_default_chain_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The vendor reads the variables once at import, into auth_util; patch what it reads.
    monkeypatch.setattr(auth_util, "environment_access_key_id", "env-id")
    monkeypatch.setattr(auth_util, "environment_access_key_secret", SECRET)
    monkeypatch.setattr(auth_util, "environment_security_token", None)
    vendor = VendorCredentials(provider=EnvironmentVariableCredentialsProvider())
    cred = await DefaultChainCredentials(vendor).get()
    assert (cred.access_key_id, cred.security_token) == ("env-id", None)


async def test_missing_credentials_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_util, "environment_access_key_id", None)
    monkeypatch.setattr(auth_util, "environment_access_key_secret", None)
    vendor = VendorCredentials(provider=EnvironmentVariableCredentialsProvider())
    with pytest.raises(FlinkAuthError) as info:
        await DefaultChainCredentials(vendor).get()
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in info.value.user_message


def test_repr_of_default_chain_is_plain() -> None:
    assert repr(DefaultChainCredentials()) == "DefaultChainCredentials()"


async def test_secret_and_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Calls that succeed, retry and fail log neither the secret nor the token."""
    caplog.set_level(logging.DEBUG)
    good = StaticCredentials(STS_AK, STS_SECRET, STS_TOKEN)
    one_throttle = Faults(fail_next=1, error_kinds=["throttle"])
    async with sim_and_client(credentials=good, faults=one_throttle) as (_, client):
        assert await client.list_deployments(WS, NS)
    bad = StaticCredentials(STS_AK, SECRET, TOKEN)
    async with sim_and_client(credentials=bad) as (_, client):
        with pytest.raises(FlinkError) as info:
            await client.list_deployments(WS, NS)
    for text in (str(info.value), repr(info.value), info.value.user_message):
        assert SECRET not in text and TOKEN not in text
    assert caplog.records, "the client should have logged the call"
    assert any("flink retry" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        line = record.getMessage()
        for secret in (SECRET, TOKEN, STS_SECRET, STS_TOKEN):
            assert secret not in line
