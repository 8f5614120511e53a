"""GetAuthorizationToken: the password `docker login -u AWS` uses on `/v2/`."""

from __future__ import annotations

import base64
import time
from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.iam.tokens import TokenClaims

TOKEN_SECONDS = 12 * 3600


@action("GetAuthorizationToken")
async def get_authorization_token(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_ids = payload.get("registryIds") or [call.principal.account_id]
    if not isinstance(registry_ids, list) or not 1 <= len(registry_ids) <= 10:
        raise errors.InvalidParameter("registryIds must list 1 to 10 registry ids")
    now = time.time()
    principal = call.principal
    claims = TokenClaims(
        account_id=principal.account_id,
        user_name=principal.user_name,
        access_key_id=principal.access_key_id,
        is_admin=principal.is_admin,
        expires_at=now + TOKEN_SECONDS,
        issued_at=now,
    )
    signer = await call.services.token_signer()
    token = signer.issue(claims)
    encoded = base64.b64encode(f"AWS:{token}".encode()).decode()
    scheme = "https" if call.request.secure else "http"
    data = []
    for registry_id in registry_ids:
        call.use_registry({"registryId": registry_id})
        data.append(
            {
                "authorizationToken": encoded,
                "expiresAt": claims.expires_at,
                "proxyEndpoint": f"{scheme}://{call.registry_host(registry_id)}",
            }
        )
    return {"authorizationData": data}
