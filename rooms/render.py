"""Rows to the JSON shapes of DESIGN.md's contract."""

from __future__ import annotations

from typing import Any

import asyncpg

from config.clock import iso
from store.db import Row


def message(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "room": row["room_id"],
        "seq": row["seq"],
        "sender_id": row["sender_id"],
        "client_id": row["client_id"],
        "text": row["text"],
        "meta": row["meta"],
        "reply_to": row["reply_to"],
        "created_at": iso(row["created_at"]),
        "edited_at": iso(row["edited_at"]),
        "deleted": row["deleted"],
    }


def room(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "metadata": row["metadata"],
        "last_seq": row["last_seq"],
        "created_at": iso(row["created_at"]),
    }


def member(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "role": row["role"],
        "muted_until": iso(row["muted_until"]),
        "last_read_seq": row["last_read_seq"],
    }


def user_room(row: asyncpg.Record) -> dict[str, Any]:
    return {
        **room(row),
        "role": row["role"],
        "muted_until": iso(row["muted_until"]),
        "last_read_seq": row["last_read_seq"],
        "unread": row["unread"],
    }
