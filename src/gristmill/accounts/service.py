"""The account registry."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.accounts.schemas import AccountCreate
from gristmill.errors import ConflictError, InvalidInputError, NotFoundError, quoted
from gristmill.scrapers import PLATFORMS, UnsafeBaseURLError, get_scraper_class, validate_base_url
from gristmill.settings import Settings


def register_account(session: Session, settings: Settings, data: AccountCreate) -> Account:
    if data.platform not in PLATFORMS:
        raise InvalidInputError(
            f"unknown platform {data.platform!r}; expected one of: {', '.join(PLATFORMS)}"
        )
    try:
        get_scraper_class(data.platform).validate_handle(data.handle)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    base_url = None
    if data.base_url is not None:
        try:
            base_url = validate_base_url(
                data.base_url,
                allow_private_networks=settings.scraper_allow_private_networks,
                nameserver=settings.scraper_dns_nameserver,
            )
        except UnsafeBaseURLError as exc:
            raise InvalidInputError(f"base_url rejected: {exc}") from exc
    if session.scalar(select(Account.id).where(Account.key == data.key)) is not None:
        raise ConflictError(f"an account with key {data.key!r} already exists")
    account = Account(
        key=data.key, platform=data.platform, handle=data.handle, base_url=base_url, active=True
    )
    try:
        with session.begin_nested():
            session.add(account)
            session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same key won
        raise ConflictError(f"an account with key {data.key!r} already exists") from exc
    session.refresh(account)
    return account


def get_account(session: Session, key: str) -> Account:
    account = session.scalar(select(Account).where(Account.key == key))
    if account is None:
        raise NotFoundError(f"account {quoted(key)} not found")
    return account


def list_accounts(session: Session, *, platform: str | None = None) -> list[Account]:
    query = select(Account).order_by(Account.key)
    if platform is not None:
        query = query.where(Account.platform == platform)
    return list(session.scalars(query))


def delete_account(session: Session, key: str) -> None:
    """Delete the account and its metrics; its job history stays (jobs keep the key as text)."""
    deleted = session.execute(delete(Account).where(Account.key == key).returning(Account.id))
    if deleted.first() is None:
        raise NotFoundError(f"account {quoted(key)} not found")
