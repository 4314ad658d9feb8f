-- Conversations: change versions for sync, read positions that count what a member has not read,
-- and the activity order of a user's room list.
--
-- rooms.version is bumped by every change to the room's messages (a send, an edit, a delete, a
-- purge) in the statement that makes it, and the changed message takes the new value as its
-- messages.version: so "what changed since version v" is the messages with version > v, and a
-- room's version is never below its last seq.  Existing messages take their seq as their version
-- (a client that kept seqs as cursors gets everything it would have got before, and more).
ALTER TABLE rooms ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN last_message_at timestamptz;
ALTER TABLE messages ADD COLUMN version bigint;
ALTER TABLE messages ADD COLUMN system boolean NOT NULL DEFAULT false;
UPDATE messages SET version = seq;
ALTER TABLE messages ALTER COLUMN version SET NOT NULL;
CREATE UNIQUE INDEX messages_room_version ON messages (room_id, version);
UPDATE rooms r SET version = r.last_seq,
                   last_message_at = (SELECT max(created_at) FROM messages m WHERE m.room_id = r.id);

-- A member's read position: messages after it that others sent, not deleted and not system
-- messages, are unread.  A member's own messages never count; a member who joined late did not
-- miss what came before (their position starts at the room's last seq when they join).  Members
-- who had read nothing start at their last own message, or at the last seq of the room when they
-- joined after its last message.
UPDATE members m SET last_read_seq = greatest(
    m.last_read_seq,
    coalesce((SELECT max(seq) FROM messages x WHERE x.room_id = m.room_id AND x.sender_id = m.user_id), 0),
    coalesce((SELECT max(seq) FROM messages x WHERE x.room_id = m.room_id AND x.created_at <= m.joined_at), 0)
);
