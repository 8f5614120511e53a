"""Upstream clients per rule, shared by the pulls of one process: one token cache, and a
client kept while its rule and credentials are unchanged (re-read every few minutes, so a
rotated secret is picked up without a restart)."""

from __future__ import annotations

import asyncio
import re
import time

from cargobay.pullthrough.rules import Rule, RuleService
from cargobay.upstream.auth import TokenCache
from cargobay.upstream.client import UpstreamClient
from cargobay.upstream.ecr import AwsKeys, EcrTokenProvider
from cargobay.upstream.urls import parse_upstream_url

CLIENT_SECONDS = 300.0
_ECR_HOST = re.compile(r"^([0-9]{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class UpstreamClients:
    def __init__(self, rules: RuleService) -> None:
        self.rules = rules
        self.tokens = TokenCache()
        self._clients: dict[tuple[str, str, float], tuple[UpstreamClient, float]] = {}
        self._retired: list[UpstreamClient] = []
        self._lock = asyncio.Lock()

    async def get(self, rule: Rule) -> UpstreamClient:
        """The client for a rule (raises the rule service's secret errors)."""
        key = (rule.registry_id, rule.prefix, rule.updated_at)
        async with self._lock:
            found = self._clients.get(key)
            if found is not None and time.monotonic() - found[1] < CLIENT_SECONDS:
                return found[0]
            client = await self._build(rule)
            stale = [k for k in self._clients if k[:2] == key[:2]]
            for old in stale:
                # Pulls in flight may still use it; it closes with the process.
                self._retired.append(self._clients.pop(old)[0])
            self._clients[key] = (client, time.monotonic())
            return client

    async def _build(self, rule: Rule) -> UpstreamClient:
        registry = parse_upstream_url(rule.upstream_url)
        credentials = await self.rules.credentials(rule)
        if rule.upstream_registry == "ecr" and credentials is not None:
            # An ecr upstream's secret holds AWS keys (username = access key id,
            # accessToken = secret key), exchanged for a registry password by
            # GetAuthorizationToken.
            match = _ECR_HOST.fullmatch(registry.host)
            region = match.group(3) if match else "us-east-1"
            provider = EcrTokenProvider(
                f"https://api.ecr.{region}.amazonaws.com",
                region,
                AwsKeys(credentials.username, credentials.password),
                registry_id=match.group(1) if match else None,
            )
            return UpstreamClient(registry, credential_provider=provider, token_cache=self.tokens)
        return UpstreamClient(registry, credentials=credentials, token_cache=self.tokens)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        retired, self._retired = self._retired, []
        for client in [*(c for c, _ in clients.values()), *retired]:
            await client.close()
