"""The user's page of personal API tokens: make one (its secret shown once), see
when each was last used, revoke one. Thin, like every page: the rules — who may
make or revoke which token, names, expiry — live in ``catalog.services.tokens``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers

from catalog.errors import UserError
from catalog.models import ApiToken
from catalog.services.tokens import token_create, token_revoke
from catalog.views.errors import form_error

EXPIRY_CHOICES = [(30, "30 days"), (90, "90 days"), (365, "1 year"), (0, "never")]


@login_required
def account_tokens(request: HttpRequest) -> HttpResponse:
    assert request.user.is_authenticated  # login_required: the page is the signed-in user's own
    new_token = None
    # The token to revoke is named in the form: one that is not the user's is said beside it.
    with form_error(not_found=True) as refused:
        if request.method == "POST":
            if request.POST.get("action") == "revoke":
                token = token_revoke(token_id=_int(request.POST.get("token"), "token"), actor=request.user)
                messages.success(request, f"Token {token.name} ({token.prefix}…) is revoked.")
                return redirect("account_tokens")
            days = _int(request.POST.get("expires_days", "90"), "expiry")
            token, secret = token_create(
                user=request.user,
                name=request.POST.get("name", ""),
                expires_in_days=days or None,
                actor=request.user,
            )
            # The secret is shown on this response only, never kept: not in the
            # session (its store is a table or a cache others can read), not in a
            # redirect. A reload asks the browser to post again, for a new token.
            new_token = {"name": token.name, "secret": secret}
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created")
    response = render(
        request,
        "account/tokens.html",
        {
            "tokens": tokens,
            "new_token": new_token,
            "error": refused.message,
            "expiry_choices": EXPIRY_CHOICES,
            "api_url": request.build_absolute_uri("/"),
        },
        status=refused.status,
    )
    if new_token is not None:
        add_never_cache_headers(response)  # nor in a cache on the way
    return response


def _int(value: str | None, what: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise UserError(f"choose a valid {what}.") from None
