"""Request and event ids (`cargobay.requestids`): what `str(uuid.uuid4())` gave, cheaper."""

from __future__ import annotations

import re
import uuid

from cargobay.requestids import new_id

_FORM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_an_id_is_a_version_4_uuid_in_canonical_text() -> None:
    for _ in range(2000):
        text = new_id()
        assert _FORM.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
