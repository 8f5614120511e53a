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


def test_a_forked_child_never_hands_out_the_parents_ids() -> None:
    import os

    new_id()  # random bytes for more ids are now waiting in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, ",".join(new_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(8)}
    assert len(child) == 8
    assert not child & parent
