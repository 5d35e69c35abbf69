"""The issuer's HTML: the sign-in page, an error page, the signed-out page (plain HTML, no script)."""

from __future__ import annotations

from html import escape

_STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; padding: 2rem 1rem; }
main { max-width: 30rem; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
.note { margin: 0 0 1.5rem; opacity: .8; }
fieldset { border: 1px solid #8888; border-radius: .5rem; margin: 0 0 1.5rem; padding: 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
ul { list-style: none; margin: 0; padding: 0; display: grid; gap: .5rem; }
button { font: inherit; cursor: pointer; border-radius: .375rem; padding: .5rem .75rem; }
.account { width: 100%; text-align: left; border: 1px solid #8888; background: transparent; color: inherit; }
.account span { display: block; font-size: .875rem; opacity: .8; }
.account:hover, .account:focus-visible { border-color: #2563eb; }
label { display: block; font-weight: 600; margin-top: .75rem; }
input, select { font: inherit; width: 100%; box-sizing: border-box; padding: .5rem; margin-top: .25rem;
  border: 1px solid #888; border-radius: .375rem; }
.primary { margin-top: 1rem; background: #2563eb; color: #fff; border: 1px solid #2563eb; }
.secondary { background: transparent; color: inherit; border: 1px solid #8888; }
.error { color: #b91c1c; font-weight: 600; margin: .25rem 0 0; }
@media (prefers-color-scheme: dark) { .error { color: #fca5a5; } }
[role=alert] { border: 2px solid #b91c1c; border-radius: .375rem; padding: .5rem 1rem; margin-bottom: 1rem; }
:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
"""


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _account_button(email: str, name: str, detail: str) -> str:
    return (
        f'<li><button class="account" type="submit" name="account" value="{escape(email)}">'
        f"{escape(name)}<span>{escape(email)}{escape(detail)}</span></button></li>"
    )


def sign_in(
    *,
    query: str,
    tenant: str | None,
    tenant_name: str,
    tenant_choices: dict[str, str] | None,
    home_tenant: str,
    suggestions: list[tuple[str, str, str]],
    current: tuple[str, str] | None,
    values: dict[str, str],
    problems: dict[str, str],
) -> str:
    """Pick a test user, or type a name and address (and, for organizations/common, a tenant)."""
    hidden = f'<input type="hidden" name="query" value="{escape(query)}">'
    where = f"{tenant_name} ({tenant})" if tenant_name else tenant
    intro = "This is the local token issuer, not Microsoft Entra ID: anyone can sign in as anyone here. " + (
        f"Tenant: {escape(where)}." if tenant else "Choose the tenant below."
    )
    parts = ["<h1>Sign in (local)</h1>", f'<p class="note">{intro}</p>']
    if problems:
        items = "".join(f'<li><a href="#{field}">{escape(text)}</a></li>' for field, text in problems.items())
        parts.append(f'<div role="alert" tabindex="-1" id="problems"><p>Check the form:</p><ul>{items}</ul></div>')
    accounts = []
    if current is not None:
        accounts.append(_account_button(current[0], current[1], " · signed in here"))
    for email, name, account_tenant in suggestions:
        if current is not None and email.lower() == current[0].lower():
            continue
        detail = "" if tenant is not None or account_tenant == home_tenant else " · another tenant"
        if tenant_choices is not None:
            detail = f" · {tenant_choices.get(account_tenant, account_tenant)}"
        accounts.append(_account_button(email, name, detail))
    if accounts:
        parts.append(
            f'<form method="post">{hidden}<fieldset><legend>Pick an account</legend>'
            f"<ul>{''.join(accounts)}</ul></fieldset></form>"
        )
    parts.append(
        f'<form method="post" novalidate>{hidden}<fieldset><legend>Or use another account</legend>'
        + _field("name", "Display name", "text", values.get("name", ""), problems, "name", "Alice Example")
        + _field("email", "Email address", "email", values.get("email", ""), problems, "email", "alice@contoso.test")
        + (_tenant_field(tenant_choices, values.get("tenant") or home_tenant, problems) if tenant_choices else "")
        + '<button class="primary" type="submit">Sign in</button></fieldset></form>'
    )
    cancel = '<button class="secondary" type="submit" name="cancel">Cancel</button>'
    parts.append(f'<form method="post">{hidden}{cancel}</form>')
    return _document("Sign in (local issuer)", "\n".join(parts))


def _field(name: str, label: str, kind: str, value: str, problems: dict[str, str], autocomplete: str, hint: str) -> str:
    problem = problems.get(name)
    described = f' aria-invalid="true" aria-describedby="{name}-error"' if problem else ""
    error = f'<p class="error" id="{name}-error">{escape(problem)}</p>' if problem else ""
    return (
        f'<label for="{name}">{label}</label>{error}'
        f'<input id="{name}" name="{name}" type="{kind}" value="{escape(value)}" autocomplete="{autocomplete}"'
        f' placeholder="{escape(hint)}"{described}>'
    )


def _tenant_field(choices: dict[str, str], selected: str, problems: dict[str, str]) -> str:
    problem = problems.get("tenant")
    described = ' aria-invalid="true" aria-describedby="tenant-error"' if problem else ""
    error = f'<p class="error" id="tenant-error">{escape(problem)}</p>' if problem else ""
    options = "".join(
        f'<option value="{escape(tid)}"{" selected" if tid == selected else ""}>{escape(name)} ({escape(tid)})</option>'
        for tid, name in choices.items()
    )
    return f'<label for="tenant">Tenant</label>{error}<select id="tenant" name="tenant"{described}>{options}</select>'


def error(code: str, description: str) -> str:
    return _document(
        "Sign-in error (local issuer)",
        f'<h1>Sign-in error</h1><p role="alert">{escape(code)}: {escape(description)}</p>'
        "<p>The request did not come from a client this issuer knows, so it is not sent back.</p>",
    )


def signed_out() -> str:
    return _document("Signed out (local issuer)", "<h1>You signed out</h1><p>You can close this tab.</p>")


def home(metadata_url: str) -> str:
    return _document(
        "Local token issuer",
        "<h1>Local token issuer</h1><p>This browser trusts the local certificate authority: sign-in from the "
        f'app will work. OpenID configuration: <a href="{escape(metadata_url)}">{escape(metadata_url)}</a>.</p>',
    )
