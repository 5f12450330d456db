from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        pattern=KEY_PATTERN,
        description="Unique slug: lower-case letters, digits, '-' and '_', at most 64 characters.",
        examples=["gristmill-mastodon"],
    )
    # Documented as the closed set it is; any other value is refused by the service with a
    # message that names the valid ones.
    platform: str = Field(
        examples=["mastodon"], json_schema_extra={"enum": ["mastodon", "bluesky"]}
    )
    handle: str = Field(min_length=1, max_length=255, examples=["gristmill@mastodon.social"])
    base_url: str | None = Field(
        default=None, max_length=2048, description="Overrides the platform's default API root."
    )


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    platform: str
    handle: str
    base_url: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
