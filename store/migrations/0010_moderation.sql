-- Moderation: bans with an optional end, members muted from posting until a time, frozen rooms
-- (only owners and admins post), and reports of messages for a moderator.
ALTER TABLE rooms ADD COLUMN frozen boolean NOT NULL DEFAULT false;
ALTER TABLE members ADD COLUMN post_muted_until timestamptz;

CREATE TABLE room_bans (
    room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    until      timestamptz,          -- NULL: until lifted
    reason     text,
    banned_by  text,                 -- NULL: a backend service
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE message_reports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id     text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    reporter_id text NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, reporter_id)
);
CREATE INDEX message_reports_room ON message_reports (room_id, id);
