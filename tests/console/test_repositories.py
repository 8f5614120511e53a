"""The repositories page: what a skopeo push shows, prefix search, sorting, pages, and
authorization as ecr:DescribeRepositories."""

from __future__ import annotations

import re

from console.consolehelp import signed_in
from e2e.ecrhelp import allow, client, make_user, unique


def _names(html: str) -> list[str]:
    return re.findall(r'href="/console/repository\?name=[^"]+">([^<]+)</a>', html)


def test_pushed_repository_is_listed_with_its_facts(console_server, pushed) -> None:
    visitor = signed_in(console_server)
    page = visitor.get(f"repositories?prefix={pushed}")
    assert page.status_code == 200
    assert _names(page.text) == [pushed]
    row = page.text[page.text.index(pushed) :]
    assert '<td class="num">1</td>' in row  # one image (two tags)
    assert "KiB" in row and "MUTABLE" in row and "AES256" in row


def test_prefix_sort_and_pages(console_server, tmp) -> None:
    ecr = client(console_server)
    base = unique("pages")
    names = [f"{base}/r{i:03d}" for i in range(55)]
    for name in names:
        ecr.create_repository(repositoryName=name)
    visitor = signed_in(console_server)
    first = visitor.get(f"repositories?prefix={base}/")
    assert first.status_code == 200
    assert _names(first.text) == names[:50]
    assert "Page 1 of 2" in first.text
    second = visitor.get(f"repositories?prefix={base}/&page=2")
    assert _names(second.text) == names[50:]
    backwards = visitor.get(f"repositories?prefix={base}/&sort=-name")
    assert _names(backwards.text)[:3] == names[::-1][:3]
    newest = visitor.get(f"repositories?prefix={base}/&sort=-created")
    assert _names(newest.text)[0] == names[-1]
    assert _names(visitor.get(f"repositories?prefix={base}/r05").text) == names[50:55]
    # Hostile query values are a page, never a 500.
    for prefix in ("%F0%9F%92%A5", "%00", "%F4%8F%BF%BF", "%ED%A0%80", "A", "x%25"):
        odd = visitor.get(f"repositories?prefix={prefix}&sort=drop&page=-3")
        assert odd.status_code == 200
        assert _names(odd.text) == []
    huge = visitor.get(f"repositories?prefix={base}/&page=99999999999999999999")
    assert huge.status_code == 200 and _names(huge.text) == []


def test_user_without_describe_repositories_sees_the_denial(console_server, tmp) -> None:
    key, secret = make_user(console_server, unique("nolist"), allow("ecr:DescribeImages"), tmp=tmp)
    visitor = signed_in(console_server, key, secret)
    page = visitor.get("repositories")
    assert page.status_code == 403
    assert "AccessDenied" in page.text
    assert "ecr:DescribeRepositories" in page.text


def test_user_with_describe_repositories_lists(console_server, pushed, tmp) -> None:
    key, secret = make_user(
        console_server, unique("lister"), allow("ecr:DescribeRepositories"), tmp=tmp
    )
    visitor = signed_in(console_server, key, secret)
    page = visitor.get(f"repositories?prefix={pushed}")
    assert page.status_code == 200
    assert _names(page.text) == [pushed]
