"""casegrid behind deploy/'s nginx site, as the README walk-through sets it up.

Debian's nginx runs the sample site itself (TLS with a throwaway certificate, the
``/casegrid/`` prefix, ``X-Forwarded-For``/``-Proto``), in front of a real uvicorn serving the
app with the settings the walk-through's environment file gives (``CASEGRID_TRUSTED_PROXIES``
and ``CASEGRID_ROOT_PATH``), through ``casegrid serve``'s own :func:`proxy_options`. Three
loopback addresses tell the parties apart: the browser connects from 127.0.0.3, nginx
connects to casegrid from 127.0.0.2 (the trusted proxy), and a direct caller from 127.0.0.1.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from api.app import create_app
from bench.proxy import nginx_conf
from casegrid.cli.serve import proxy_options
from casegrid.cluster import free_port
from casegrid.settings import Settings
from cases.tokens import create_token
from tests.helpers.server import running_server

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx" / "casegrid.conf"
BROWSER, PROXY = "127.0.0.3", "127.0.0.2"

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                reason="Debian's nginx is not installed (scripts/setup.sh --test installs it)")


def render_site(app_port: int, tls_port: int, http_port: int, cert: Path, key: Path) -> str:
    """deploy/nginx/casegrid.conf with this machine's ports and certificate, and nginx's
    connections to casegrid made from the proxy's own address. Nothing else is changed."""
    site = SITE.read_text(encoding="utf-8")
    edits = [
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("/etc/ssl/certs/casegrid.pem", str(cert)),
        ("/etc/ssl/private/casegrid.key", str(key)),
        ("proxy_pass http://casegrid_app/;", f"proxy_pass http://casegrid_app/;\n"
                                              f"        proxy_bind {PROXY};"),
    ]
    for old, new in edits:
        assert site.count(old) == 1, f"deploy/nginx/casegrid.conf no longer has {old!r}"
        site = site.replace(old, new)
    return site


@contextmanager
def nginx_in_front(app_port: int, tmp: Path) -> Iterator[tuple[str, str]]:
    """Run the sample site; yields its (https, http) base URLs."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=casegrid.example.gov.cn", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    tls_port, http_port = free_port(), free_port()
    (tmp / "site.conf").write_text(render_site(app_port, tls_port, http_port, cert, key),
                                   encoding="utf-8")
    (tmp / "nginx.conf").write_text(nginx_conf(
        tmp, f"    access_log {tmp}/access.log;\n    include {tmp}/site.conf;",
        worker_connections=64), encoding="utf-8")
    args = [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{http_port}/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.1)
        yield f"https://127.0.0.1:{tls_port}", f"http://127.0.0.1:{http_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def browser(base: str) -> httpx.Client:
    """A client connecting from the browser's address (the test certificate is self-signed)."""
    transport = httpx.HTTPTransport(local_address=BROWSER, verify=False)
    return httpx.Client(base_url=base, transport=transport, timeout=60)


@pytest.fixture
def served(city_engine, city_db_url, tmp_path, caplog) -> Iterator[tuple[str, str, str]]:
    """casegrid as the walk-through runs it, nginx in front: (https, http, direct) base URLs."""
    settings = Settings(trusted_proxies=PROXY, root_path="/casegrid")
    app = create_app(settings=settings, database_url=city_db_url)
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    # log_config=None: uvicorn configures no handler of its own, so its access log (at
    # log_level info) reaches caplog.
    with running_server(app, log_config=None, log_level="info", **proxy_options(settings)) as direct:
        port = int(direct.rsplit(":", 1)[1])
        with nginx_in_front(port, tmp_path) as (https, http):
            yield https, http, direct


def access_log_clients(caplog, path: str) -> list[str]:
    """The client addresses uvicorn's access log shows for requests of ``path``."""
    out = []
    for rec in caplog.records:
        if rec.name == "uvicorn.access" and isinstance(rec.args, tuple) and len(rec.args) >= 3 \
                and str(rec.args[2]).split("?")[0] == path:
            out.append(str(rec.args[0]).rsplit(":", 1)[0])
    return out


def _sign_in(b: httpx.Client, page: httpx.Response, username: str, password: str,
             **kwargs) -> httpx.Response:
    """Submit the sign-in form of ``page`` as a browser would (its action, its hidden fields)."""
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)[1]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return b.post(kwargs.pop("action", action),
                  data={**hidden, "username": username, "password": password}, **kwargs)


def test_sign_in_and_a_map_page_through_nginx_under_the_prefix(served, city_engine, caplog):
    """The walk-through's set-up, as a dispatcher uses it: open a map link, get sent to the
    sign-in form, sign in, land on the map; all under /casegrid/, over TLS, through nginx."""
    from cases.users import create_user

    https, http, direct = served
    with city_engine.begin() as conn:
        create_user(conn, "disp.proxy", "dispatcher", "correct horse battery")
        _, token = create_token(conn, "dispatcher", "proxy test")

    with browser(http) as b:
        # Plain HTTP is sent to HTTPS by nginx; the bare prefix gets its slash.
        r = b.get("/casegrid/maps/dispatch")
        assert r.status_code == 301 and r.headers["location"].startswith("https://")
    with browser(https) as b:
        assert b.get("/casegrid").headers["location"].endswith("/casegrid/")
        assert b.get("/casegrid/health").json()["status"] == "ok"

        # Not signed in: the map sends the browser to the sign-in form, under the prefix.
        r = b.get("/casegrid/maps/dispatch?lang=en")
        assert r.status_code == 303, r.text
        assert r.headers["location"].startswith("/casegrid/login?next=")
        form = b.get(r.headers["location"])
        assert form.status_code == 200
        assert 'action="/casegrid/login"' in form.text
        assert "Path=/casegrid/login" in form.headers["set-cookie"]  # the form's CSRF cookie

        # Signing in: a 303 back to the map, the session cookie scoped to the prefix and
        # Secure (nginx said https, and casegrid believes nginx).
        r = _sign_in(b, form, "disp.proxy", "correct horse battery")
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/casegrid/maps/dispatch?lang=en"
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("casegrid_session"))
        assert "Path=/casegrid" in cookie and "secure" in cookie.lower()
        page = b.get(r.headers["location"])
        assert page.status_code == 200, page.text
        assets = re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', page.text)
        assert assets and all(a.startswith("/casegrid/static/vendor/") for a in assets), assets
        assert '"/casegrid/maps/api/cases"' in page.text
        for asset in assets[:3]:
            assert b.get(asset).status_code == 200, asset
        cases = b.get("/casegrid/maps/api/cases", params={"bbox": "116.9,34.9,117.4,35.3"})
        assert cases.status_code == 200, cases.text

        # The workbench's links stay under the prefix too.
        work = b.get("/casegrid/work")
        assert work.status_code == 200
        links = re.findall(r'(?:href|action)="(/[^"#]*)"', work.text)
        assert links and all(x.startswith("/casegrid/") for x in links), links

        # Readiness through the proxy (no worker here: 503 with the reason).
        ready = b.get("/casegrid/health/ready")
        assert ready.status_code == 503 and not ready.json()["checks"]["worker"]["ok"]

    # The session (what sign-in throttling counts too) has the browser's address, as nginx
    # forwarded it, and so has the access log; not nginx's own.
    with city_engine.connect() as conn:
        addresses = conn.execute(text("SELECT address FROM user_session")).scalars().all()
    assert [str(a) for a in addresses] == [BROWSER]
    assert set(access_log_clients(caplog, "/casegrid/health")) == {BROWSER}

    # A caller that is not the trusted proxy cannot choose its address by a header: its
    # failed sign-ins count against its own address, not the one it names.
    caplog.clear()
    with httpx.Client(base_url=direct, timeout=60) as d:
        spoof = {"X-Forwarded-For": BROWSER, "X-Forwarded-Proto": "https"}
        assert d.get("/health", headers=spoof).status_code == 200
        form = d.get("/login", headers=spoof)
        # Straight to casegrid: its own path, the form's cookie sent by hand (its Path is
        # the proxy's /casegrid/login).
        csrf = "; ".join(f"{k}={v}" for k, v in form.cookies.items())
        wrong = _sign_in(d, form, "nobody.here", "wrong", action="/login",
                         headers={**spoof, "Cookie": csrf})
        assert wrong.status_code == 401, wrong.text
    assert access_log_clients(caplog, "/casegrid/health") == ["127.0.0.1"]
    with city_engine.connect() as conn:
        failures = conn.execute(text("SELECT address FROM login_failure")).scalars().all()
    assert [str(a) for a in failures] == ["127.0.0.1"]
    # And a token still works for a machine calling the JSON through the proxy.
    with browser(https) as b:
        r = b.get("/casegrid/maps/api/cases", params={"bbox": "116.9,34.9,117.4,35.3"},
                  headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200


def test_redirects_and_cookies_are_put_under_the_prefix():
    """RootPathResponses: root-relative locations and cookie paths get the prefix; absolute
    URLs, relative paths and locations already under it stay as they are."""
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse
    from fastapi.testclient import TestClient

    from api.root_path import RootPathResponses

    app = FastAPI()
    app.add_middleware(RootPathResponses)

    @app.get("/go")
    def go(to: str):
        r = RedirectResponse(to, status_code=303)
        r.set_cookie("a", "1", path="/")
        r.set_cookie("b", "2", path="/login")
        return r

    expect = {"/login": "/casegrid/login", "/work?x=1": "/casegrid/work?x=1",
              "/casegrid/maps/dispatch": "/casegrid/maps/dispatch", "/casegrid": "/casegrid",
              "https://example.org/x": "https://example.org/x", "//evil.example/x":
              "//evil.example/x", "next": "next", "/casegridx": "/casegrid/casegridx"}
    with TestClient(app, root_path="/casegrid") as client:
        for to, want in expect.items():
            r = client.get("/go", params={"to": to}, follow_redirects=False)
            assert r.headers["location"] == want, to
        cookies = r.headers.get_list("set-cookie")
        assert any("a=1" in c and "Path=/casegrid;" in c for c in cookies), cookies
        assert any("b=2" in c and "Path=/casegrid/login;" in c for c in cookies), cookies
    with TestClient(app) as client:  # served at the root: nothing changes
        r = client.get("/go", params={"to": "/login"}, follow_redirects=False)
        assert r.headers["location"] == "/login"
        assert any("Path=/;" in c for c in r.headers.get_list("set-cookie"))
