"""The administrator's part of the operator page: the accounts in service, and adding,
removing, re-passwording and re-roling them (as `msa centre user` does). Administrators
reach these and nothing else; every change is audited before it is made. The last
administrator in service can be neither removed nor given another role: nobody could then
manage the accounts from the page.
"""
from __future__ import annotations

from aiohttp import web

from .accounts import AccountInputError, Role
from .authweb import ADMIN_ROLES, WORK_KEY, allow, audit, json_body, text_field
from .errors import CentreError

ACCOUNTS_PATH = "/api/accounts"


def _refuse(exc: CentreError) -> web.HTTPException:
    if isinstance(exc, AccountInputError):
        return web.HTTPBadRequest(text=exc.detail[:300])
    return web.HTTPServiceUnavailable(text="the centre cannot store this now")


@allow(ADMIN_ROLES)
async def list_accounts(request: web.Request) -> web.Response:
    accounts = request.app[WORK_KEY].accounts.all()
    return web.json_response({"accounts": [{"name": a.name, "role": a.role.value,
                                            "created_at": a.created_at} for a in accounts]})


@allow(ADMIN_ROLES)
async def add_account(request: web.Request) -> web.Response:
    body = await json_body(request)
    name, role = text_field(body, "name", 64), text_field(body, "role", 32)
    password = text_field(body, "password", 1024)
    work = request.app[WORK_KEY]
    try:
        work.accounts.validate(name, role, password)
    except CentreError as exc:
        raise _refuse(exc) from None
    if work.accounts.get(name) is not None:
        raise web.HTTPConflict(text=f"an account named {name!r} is in service already")
    audit(request, "account.add", name, {"role": role})
    try:
        account = work.accounts.add(name, role, password)
    except CentreError as exc:
        raise _refuse(exc) from None
    return web.json_response({"name": account.name, "role": account.role.value}, status=201)


def _is_last_admin(request: web.Request, name: str) -> bool:
    admins = [a.name.lower() for a in request.app[WORK_KEY].accounts.all()
              if a.role is Role.ADMINISTRATOR]
    return admins == [name.lower()]


@allow(ADMIN_ROLES)
async def change_account(request: web.Request) -> web.Response:
    name, change = request.match_info["name"], request.match_info["change"]
    work = request.app[WORK_KEY]
    account = work.accounts.get(name)
    if account is None:
        raise web.HTTPNotFound(text="no such account in service")
    body = {} if change == "remove" else await json_body(request)
    try:
        if change == "remove":
            if _is_last_admin(request, account.name):
                raise web.HTTPConflict(text="the last administrator cannot be removed")
            audit(request, "account.remove", account.name)
            work.accounts.remove(account.name)
        elif change == "password":
            password = text_field(body, "password", 1024)
            work.accounts.validate(password=password)
            audit(request, "account.passwd", account.name)
            work.accounts.set_password(account.name, password)
        else:
            role = text_field(body, "role", 32)
            work.accounts.validate(role=role)
            if role != Role.ADMINISTRATOR.value and _is_last_admin(request, account.name):
                raise web.HTTPConflict(text="the last administrator keeps the role")
            audit(request, "account.role", account.name, {"role": role})
            work.accounts.set_role(account.name, role)
    except CentreError as exc:
        raise _refuse(exc) from None
    return web.json_response({"name": account.name, "changed": change})


def add_account_routes(app: web.Application) -> None:
    app.router.add_get(ACCOUNTS_PATH, list_accounts)
    app.router.add_post(ACCOUNTS_PATH, add_account)
    app.router.add_post(ACCOUNTS_PATH + "/{name}/{change:remove|password|role}", change_account)
