-- Push delivery: system notifications (chat offline push) are idempotent by key alone,
-- deliveries know when they were last sent, and devices are looked up by user quickly.

CREATE UNIQUE INDEX notifications_system_idempotency ON notifications (idempotency_key)
    WHERE api_key_id IS NULL AND idempotency_key IS NOT NULL;

ALTER TABLE deliveries ADD COLUMN sent_at timestamptz;
CREATE INDEX deliveries_due ON deliveries (notification_id, status) WHERE status IN ('pending', 'sending', 'retrying');

CREATE INDEX devices_valid_user ON devices (user_id) WHERE invalid_at IS NULL;
