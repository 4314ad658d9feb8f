-- A notification's opens are counted once per user, and a client may only report an open of a
-- notification sent to one of its devices: a bare counter let any client raise any count, and the
-- same user opening twice counted twice.  notifications.opened stays the count (campaign stats sum it).
CREATE TABLE notification_opens (
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, user_id)
);
