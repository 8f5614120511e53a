"""The console on a deployment serving two regions (`regions_served`): the region picker
scopes every page to one region as the AWS console's does (repositories listed, described and
changed there), the choice survives across pages, an unserved region or a forged form is
refused, and a one-region deployment shows no picker."""

from __future__ import annotations

import boto3

from console.consolehelp import REGION_DEFAULT as DEFAULT
from console.consolehelp import REGION_OTHER as OTHER
from console.consolehelp import REGION_SUFFIX as SUFFIX
from console.consolehelp import csrf_token, signed_in
from e2e.ecrhelp import ACCOUNT, unique
from server import Server


def test_pages_show_the_chosen_region_only(regional: tuple[Server, str, str]) -> None:
    server, home, away = regional
    visitor = signed_in(server)
    listing = visitor.get("repositories?prefix=regional/")
    assert listing.status_code == 200
    assert home in listing.text and away not in listing.text
    assert 'id="region-picker"' in listing.text
    assert f'<option value="{DEFAULT}" selected>' in listing.text

    switched = visitor.post(
        "region",
        {
            "csrf_token": csrf_token(listing.text),
            "region": OTHER,
            "next": "/console/repositories?prefix=regional/",
        },
    )
    assert switched.status_code == 303
    assert switched.headers["Location"] == "/console/repositories?prefix=regional/"
    cookie = next(c for c in visitor.http.cookies if c.name == "cargobay_console_region")
    assert cookie.value == OTHER and cookie.has_nonstandard_attr("HttpOnly")

    listing = visitor.get("repositories?prefix=regional/")
    assert away in listing.text and home not in listing.text
    assert f'<option value="{OTHER}" selected>' in listing.text
    # A repository page is the region's: its URI on the region's host and its settings, and
    # the other region's repository does not exist here.
    page = visitor.get(f"repository?name={away}")
    assert page.status_code == 200
    assert f"{ACCOUNT}.dkr.ecr.{OTHER}.{SUFFIX}/{away}" in page.text
    assert visitor.get(f"repository?name={home}").status_code == 404
    settings = visitor.get(f"settings?name={away}")
    assert settings.status_code == 200 and "IMMUTABLE" in settings.text

    # Back to the default region: the choice is the cookie, not a server-side state.
    back = visitor.submit("repositories", "region", {"region": DEFAULT, "next": "/console/usage"})
    assert back.status_code == 303 and back.headers["Location"] == "/console/usage"
    listing = visitor.get("repositories?prefix=regional/")
    assert home in listing.text and away not in listing.text


def test_a_region_not_served_or_a_forged_form_is_refused(
    regional: tuple[Server, str, str],
) -> None:
    server, home, _ = regional
    visitor = signed_in(server)
    refused = visitor.submit("repositories", "region", {"region": "ap-south-1"})
    assert refused.status_code == 400
    assert "ap-south-1 is not served here" in refused.text
    assert "cargobay_console_region" not in {c.name for c in visitor.http.cookies}
    forged = visitor.post("region", {"region": OTHER})  # no CSRF token
    assert forged.status_code == 403
    assert "cargobay_console_region" not in {c.name for c in visitor.http.cookies}
    # Somewhere else than a console page is never a redirect target.
    elsewhere = visitor.submit(
        "repositories", "region", {"region": OTHER, "next": "//evil.example/x"}
    )
    assert elsewhere.status_code == 303
    assert elsewhere.headers["Location"] == "/console/repositories"
    # A cookie naming a region the deployment does not serve falls back to the default.
    visitor.http.cookies.set("cargobay_console_region", "ap-south-1", path="/console/")
    listing = visitor.get("repositories?prefix=regional/")
    assert home in listing.text and f'<option value="{DEFAULT}" selected>' in listing.text


def test_one_region_shows_no_picker(console_server: Server) -> None:
    listing = signed_in(console_server).get("repositories")
    assert listing.status_code == 200 and "Repositories" in listing.text
    assert "region-picker" not in listing.text


def test_the_registry_page_shows_the_chosen_region_s_settings(
    regional: tuple[Server, str, str],
) -> None:
    """Pull-through rules and the replication configuration are per region: the Registry page
    lists the chosen region's only."""
    server, _, _ = regional
    key, secret = server.credentials
    away = boto3.client(
        "ecr",
        endpoint_url=server.url,
        region_name=OTHER,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    prefix = unique("awayrule")
    away.create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry.example.invalid"
    )
    filters = [{"filter": f"{prefix}-repl", "filterType": "PREFIX_MATCH"}]
    destination = [{"region": DEFAULT, "registryId": ACCOUNT}]
    away.put_replication_configuration(
        replicationConfiguration={
            "rules": [{"destinations": destination, "repositoryFilters": filters}]
        }
    )
    try:
        visitor = signed_in(server)
        here = visitor.get("registry")
        assert here.status_code == 200 and "Registry" in here.text
        assert prefix not in here.text
        moved = visitor.submit("registry", "region", {"region": OTHER, "next": "/console/registry"})
        assert moved.status_code == 303
        there = visitor.get("registry")
        assert f"<code>{prefix}</code>" in there.text and f"{prefix}-repl" in there.text
    finally:
        away.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        away.put_replication_configuration(replicationConfiguration={"rules": []})
