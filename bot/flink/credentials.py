"""Where the bot's Alibaba Cloud credentials come from.

The client asks a `CredentialsProvider` before every request, so temporary (STS) credentials that
the provider refreshes are picked up without restarting. Secrets never appear in a repr or a log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from bot.flink.errors import FlinkAuthError

if TYPE_CHECKING:
    from alibabacloud_credentials.client import Client as VendorCredentialsClient


class Credential(BaseModel):
    """One AccessKey pair, with the STS token when the pair is temporary.

    The secret and the token are `SecretStr`: their repr and str are masked.
    """

    model_config = ConfigDict(frozen=True)

    access_key_id: str
    access_key_secret: SecretStr
    security_token: SecretStr | None = None

    @field_validator("security_token", mode="before")
    @classmethod
    def _blank_token(cls, v: object) -> object:
        # The vendor chain reports "no token" as "" for long-term keys.
        return None if v == "" else v

    @property
    def is_temporary(self) -> bool:
        return self.security_token is not None


@runtime_checkable
class CredentialsProvider(Protocol):
    async def get(self) -> Credential:
        """The credential to sign the next request with."""
        ...


class StaticCredentials:
    """A fixed AccessKey (and optional STS token): for tests, the simulator and local runs."""

    def __init__(self, access_key_id: str, access_key_secret: str | SecretStr, token: str | None = None):
        self._credential = Credential(
            access_key_id=access_key_id, access_key_secret=access_key_secret, security_token=token
        )

    async def get(self) -> Credential:
        return self._credential

    def __repr__(self) -> str:
        return f"StaticCredentials(access_key_id={self._credential.access_key_id!r}, secret=***)"


class DefaultChainCredentials:
    """Alibaba Cloud's default credential chain (`alibabacloud_credentials.client.Client()`).

    Order: environment, OIDC role (RRSA), `aliyun` CLI profile, credentials file, ECS RAM role,
    credentials URI. The vendor client caches and refreshes temporary credentials itself, so asking
    it before each request is cheap. It is built on first use: building it reads files and sets up
    the ECS provider, which has no place in a constructor.
    """

    def __init__(self, client: VendorCredentialsClient | None = None) -> None:
        self._client = client

    async def get(self) -> Credential:
        from alibabacloud_credentials.exceptions import CredentialException

        if self._client is None:
            from alibabacloud_credentials.client import Client

            self._client = Client()
        try:
            model = await self._client.get_credential_async()
        except CredentialException as e:
            # The vendor message lists each provider's failure; it names env vars, never values.
            raise FlinkAuthError(
                f"no Alibaba Cloud credentials: {e}",
                user_message=(
                    "The bot has no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                    "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or give it a RAM role."
                ),
            ) from None
        if not model.access_key_id or not model.access_key_secret:
            raise FlinkAuthError(
                "credential chain returned an empty AccessKey",
                user_message="The bot's Alibaba Cloud credentials are empty; check its AccessKey settings.",
            )
        return Credential(
            access_key_id=model.access_key_id,
            access_key_secret=model.access_key_secret,
            security_token=model.security_token,
        )

    def __repr__(self) -> str:
        return "DefaultChainCredentials()"
