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
-- Every send now also moves its sender's read position: room left on each page keeps that update
-- HOT (last_read_seq is in no index), so it writes no index entry.
ALTER TABLE members SET (fillfactor = 70);
UPDATE rooms r SET version = r.last_seq,
                   last_message_at = (SELECT max(created_at) FROM messages m WHERE m.room_id = r.id);

-- A member's read position: messages after it that others sent, not deleted and not system
-- messages, are unread.  A member's own messages never count; a member who joined late did not
-- miss what came before (their position starts at the room's last seq when they join).  Members
-- who had read nothing start at their last own message, or at the last seq of the room when they
-- joined after its last message.
--
-- One pass over the messages (a lookup per member was O(messages x members): two days on a million
-- messages and 10,000 members, under the ALTERs' locks): the last own message of each sender, and the
-- last seq before each join, from one timeline of messages and joins per room.
WITH own AS (
    SELECT room_id, sender_id AS user_id, max(seq) AS seq FROM messages GROUP BY room_id, sender_id
),
timeline AS (
    SELECT room_id, created_at AS at, 0 AS kind, seq, NULL::text AS user_id FROM messages
    UNION ALL
    SELECT room_id, joined_at, 1, NULL, user_id FROM members
),
at_join AS (
    -- the last seq created at or before each join (messages sort before a join at the same instant)
    SELECT room_id, user_id,
           max(seq) OVER (PARTITION BY room_id ORDER BY at, kind ROWS UNBOUNDED PRECEDING) AS seq
    FROM timeline
)
UPDATE members m SET last_read_seq = greatest(m.last_read_seq, coalesce(o.seq, 0), coalesce(j.seq, 0))
FROM at_join j LEFT JOIN own o ON o.room_id = j.room_id AND o.user_id = j.user_id
WHERE j.user_id IS NOT NULL AND m.room_id = j.room_id AND m.user_id = j.user_id;
