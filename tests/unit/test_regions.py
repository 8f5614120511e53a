"""The request region (`cargobay.regions`) and the `regions_served` setting."""

from __future__ import annotations

import asyncio

import pytest

from cargobay import regions
from cargobay.config import ConfigError, load_settings


def test_region_keys_store_the_default_as_empty() -> None:
    assert regions.key("us-east-1", "us-east-1") == ""
    assert regions.key("eu-west-1", "us-east-1") == "eu-west-1"
    assert regions.from_key("", "us-east-1") == "us-east-1"
    assert regions.from_key("eu-west-1", "us-east-1") == "eu-west-1"


def test_a_request_region_stays_in_its_own_task() -> None:
    async def serve(region: str) -> tuple[str, str]:
        regions.use(region, "us-east-1")
        await asyncio.sleep(0)
        return regions.current("us-east-1"), regions.current_key()

    async def main() -> list[tuple[str, str]]:
        first = asyncio.create_task(serve("eu-west-1"))
        second = asyncio.create_task(serve("us-east-1"))
        found = [await first, await second]
        return [*found, (regions.current("us-east-1"), regions.current_key())]

    assert asyncio.run(main()) == [
        ("eu-west-1", "eu-west-1"),
        ("us-east-1", ""),
        ("us-east-1", ""),  # the caller's context never saw either
    ]
    with regions.serving_key("ap-south-1"):
        assert regions.current("us-east-1") == "ap-south-1"
    assert regions.current_key() == ""


@pytest.mark.parametrize(
    ("host", "found"),
    [
        ("000000000000.dkr.ecr.eu-west-1.registry.example.test", "eu-west-1"),
        ("000000000000.dkr.ecr.eu-west-1.registry.example.test:5000", "eu-west-1"),
        ("000000000000.DKR.ECR.EU-WEST-1.Registry.Example.Test", "eu-west-1"),
        ("000000000000.dkr.ecr.eu-west-1.other.test", None),
        ("127.0.0.1:5000", None),
        ("000000000000.dkr.ecr.not_a_region.registry.example.test", None),
    ],
)
def test_the_region_of_an_ecr_host(host: str, found: str | None) -> None:
    assert regions.from_host(host, "registry.example.test") == found
    assert regions.from_host(host, "") is None


def test_regions_served_always_include_the_default(tmp_path) -> None:
    assert load_settings(environ={}).served_regions == ("us-east-1",)
    env = {"CARGOBAY_REGION": "eu-west-1", "CARGOBAY_REGIONS_SERVED": "us-east-1, eu-west-1"}
    assert load_settings(environ=env).served_regions == ("eu-west-1", "us-east-1")
    config = tmp_path / "cargobay.toml"
    config.write_text('regions_served = ["eu-central-1", "ap-south-1"]\n')
    assert load_settings(config, environ={}).served_regions == (
        "us-east-1",
        "eu-central-1",
        "ap-south-1",
    )
    with pytest.raises(ConfigError, match="regions_served"):
        load_settings(environ={"CARGOBAY_REGIONS_SERVED": "moon-base"})
