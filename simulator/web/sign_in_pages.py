"""The sign-in, password-change and sign-out pages: small server-rendered forms, no scripts.

They are plain HTML (not Gradio) so that a refusal can say exactly what happened ("try again in 4
minutes", "this account is disabled") and so that the forced password change happens before the
app itself loads. Every value is escaped by jinja2's autoescape.
"""

from __future__ import annotations

from jinja2 import Environment

_env = Environment(autoescape=True)

_PAGE = _env.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · CounselSim</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f6f8;color:#1d2733;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:28px 32px;
width:min(380px,92vw)}
h1{font-size:1.3rem;margin:0 0 4px}p.lead{color:#4a5868;margin:0 0 18px;font-size:.95rem}
label{display:block;font-weight:600;font-size:.9rem;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:9px 10px;border:1px solid #b8c2cc;border-radius:6px;
font-size:1rem}
button{margin-top:18px;width:100%;padding:10px;border:0;border-radius:6px;background:#0f766e;
color:#fff;font-size:1rem;font-weight:600;cursor:pointer}
.problem{background:#fdecea;color:#8a1c12;border-radius:6px;padding:9px 11px;margin:0 0 8px}
.ok{background:#e8f5e9;color:#1b5e20;border-radius:6px;padding:9px 11px;margin:0 0 8px}
.hint{color:#4a5868;font-size:.85rem;margin-top:10px}
a{color:#1f5fc7}
.brand{border-bottom:1px solid #e3e8ee;margin:0 0 16px;padding-bottom:12px}
.brand .name{font-weight:700;color:#0f3d3a;font-size:1.5rem;letter-spacing:.2px}
.brand .what{color:#4a5868;margin:4px 0 0;font-size:.92rem;line-height:1.35}
</style></head><body><main>
<header class="brand"><div class="name">CounselSim</div>
<p class="what">Practise counseling conversations with simulated clients and get feedback on
each turn from a coach and your supervisor.</p></header>
<h1>{{ title }}</h1>
{% if lead %}<p class="lead">{{ lead }}</p>{% endif %}
{% if problem %}<p class="problem" role="alert" id="problem">{{ problem }}</p>{% endif %}
{% if ok %}<p class="ok" role="status" id="ok">{{ ok }}</p>{% endif %}
{% if kind == "login" %}
<form method="post" action="/login">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required maxlength="64"
 value="{{ name }}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required
 maxlength="1024">
<button type="submit">Sign in</button>
</form>
{% elif kind == "password" %}
<form method="post" action="/password">
<label for="current">Current password</label>
<input id="current" name="current" type="password" autocomplete="current-password" required>
<label for="new">New password</label>
<input id="new" name="new" type="password" autocomplete="new-password" required
 minlength="{{ min }}">
<label for="repeat">New password again</label>
<input id="repeat" name="repeat" type="password" autocomplete="new-password" required>
<button type="submit">Change password</button>
</form>
<p class="hint">At least {{ min }} characters, not a common password and not your user name.
A few words together are easy to remember and hard to guess.</p>
{% if not forced %}<p class="hint"><a href="/">Back to CounselSim</a></p>{% endif %}
{% elif kind == "logout" %}
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
<p class="hint"><a href="/">Back to CounselSim</a></p>
{% endif %}
</main></body></html>
""")


def sign_in_page(problem: str = "", name: str = "", ok: str = "") -> str:
    return _PAGE.render(kind="login", title="Sign in", problem=problem, name=name, ok=ok,
                        lead="Sign in with the account your training program gave you.")


def password_page(*, forced: bool, min_length: int, problem: str = "", ok: str = "") -> str:
    lead = ("Before you start: choose your own password in place of the one you were given."
            if forced else "")
    return _PAGE.render(kind="password", title="Change your password", problem=problem, ok=ok,
                        lead=lead, forced=forced, min=min_length)


def sign_out_page() -> str:
    return _PAGE.render(kind="logout", title="Sign out", lead="End your sign-in on this browser.")


__all__ = ["password_page", "sign_in_page", "sign_out_page"]
