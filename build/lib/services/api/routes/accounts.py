from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gristmill.accounts import service
from gristmill.accounts.schemas import AccountCreate, AccountRead
from gristmill.metrics.schemas import AccountMetrics
from gristmill.metrics.service import read_account_metrics
from services.api.deps import ReadAuth, SessionDep, SettingsDep, WriteAuth

router = APIRouter(prefix="/api/accounts", tags=["accounts"])


@router.post("", dependencies=[WriteAuth], status_code=status.HTTP_201_CREATED)
def register_account(
    body: AccountCreate, session: SessionDep, settings: SettingsDep, response: Response
) -> AccountRead:
    account = service.register_account(session, settings, body)
    response.headers["Location"] = f"/api/accounts/{account.key}"
    return AccountRead.model_validate(account)


@router.get("", dependencies=[ReadAuth])
def list_accounts(session: SessionDep, platform: str | None = None) -> list[AccountRead]:
    return [
        AccountRead.model_validate(a) for a in service.list_accounts(session, platform=platform)
    ]


@router.get("/{key}", dependencies=[ReadAuth])
def get_account(key: str, session: SessionDep) -> AccountRead:
    return AccountRead.model_validate(service.get_account(session, key))


@router.delete("/{key}", dependencies=[WriteAuth], status_code=status.HTTP_204_NO_CONTENT)
def delete_account(key: str, session: SessionDep) -> None:
    """Deletes the account and its metrics; its jobs stay in the history."""
    service.delete_account(session, key)


@router.get("/{key}/metrics", dependencies=[ReadAuth])
def get_account_metrics(
    key: str,
    session: SessionDep,
    start: Annotated[date | None, Query(alias="from", description="First UTC date")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC date")] = None,
) -> AccountMetrics:
    """Daily snapshots and per-day activity in date order."""
    return read_account_metrics(session, key, start=start, end=end)
