"""Who is asking: the identity every request is checked as."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: str
    user_name: str
    access_key_id: str
    is_admin: bool = False

    @property
    def arn(self) -> str:
        if self.is_admin and self.user_name == "root":
            return f"arn:aws:iam::{self.account_id}:root"
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"
