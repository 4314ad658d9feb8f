"""Rows to the JSON shapes of the client contract (docs/protocol.md, the OpenAPI document)."""

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
        "version": row["version"],
        "sender_id": row["sender_id"],
        "client_id": row["client_id"],
        "text": row["text"],
        "meta": row["meta"],
        "reply_to": row["reply_to"],
        "created_at": iso(row["created_at"]),
        "edited_at": iso(row["edited_at"]),
        "deleted": row["deleted"],
        "system": row["system"],
    }


def room(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "metadata": row["metadata"],
        "last_seq": row["last_seq"],
        "version": row["version"],
        "frozen": row["frozen"],
        "created_at": iso(row["created_at"]),
    }


def member(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "role": row["role"],
        "muted_until": iso(row["muted_until"]),
        "post_muted_until": iso(row["post_muted_until"]),
        "last_read_seq": row["last_read_seq"],
    }


def user_room(row: asyncpg.Record, unread: int) -> dict[str, Any]:
    """A room of a user's room list: the room, the member's state, and the last message (cut)."""
    last = None
    if row["last_id"] is not None:
        last = {
            "id": row["last_id"],
            "seq": row["last_seq"],
            "sender_id": row["last_sender_id"],
            "text": row["last_text"],
            "created_at": iso(row["last_created_at"]),
            "deleted": row["last_deleted"],
            "system": row["last_system"],
        }
    return {
        **room(row),
        "active_at": iso(row["active_at"]),
        "role": row["role"],
        "muted_until": iso(row["muted_until"]),
        "post_muted_until": iso(row["post_muted_until"]),
        "last_read_seq": row["last_read_seq"],
        "unread": unread,
        "last_message": last,
    }
