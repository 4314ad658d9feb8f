-- Offline chat push is found by the workers in PostgreSQL instead of being queued per message by the
-- web nodes (that enqueue was over a quarter of the send path's CPU).  New messages are pending;
-- messages that existed before this migration are not.
ALTER TABLE messages ADD COLUMN push_pending boolean NOT NULL DEFAULT false;
ALTER TABLE messages ALTER COLUMN push_pending SET DEFAULT true;
CREATE INDEX messages_push_pending ON messages (id) WHERE push_pending;
