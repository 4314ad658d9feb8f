-- Campaigns: indexes that keep segment filters fast on a million users, the per-user send log
-- (frequency caps; unique per campaign so a user is never sent one campaign twice, even across
-- crashes), the runner's resume point, and progress snapshots for stats over time.

CREATE INDEX users_attributes ON users USING gin (attributes jsonb_path_ops);
CREATE INDEX users_tags ON users USING gin (tags);
CREATE INDEX users_last_active_at ON users (last_active_at);
CREATE INDEX devices_platform ON devices (platform, user_id) WHERE invalid_at IS NULL;
CREATE INDEX devices_app_version ON devices (app_version, user_id) WHERE invalid_at IS NULL;
CREATE INDEX devices_locale ON devices (locale, user_id) WHERE invalid_at IS NULL;

ALTER TABLE campaigns
    ADD COLUMN audience      jsonb,          -- the filter resolved when scheduled (segment or inline)
    ADD COLUMN targeted      integer,        -- users in the audience when the run started
    ADD COLUMN cursor        text,           -- last user id handled in the current pass
    ADD COLUMN pass_next_due timestamptz,    -- earliest deferred user seen in the current pass
    ADD COLUMN next_due_at   timestamptz,    -- when the next pass is worth starting
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now();
CREATE INDEX campaigns_live ON campaigns (status, scheduled_at) WHERE status IN ('scheduled', 'running');

CREATE INDEX notifications_campaign ON notifications (campaign_id) WHERE campaign_id IS NOT NULL;

CREATE TABLE campaign_sends (
    campaign_id     uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('sent', 'skipped')),
    reason          text,
    notification_id uuid,
    sent_at         timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_sends_cap ON campaign_sends (user_id, sent_at) WHERE status = 'sent';

CREATE TABLE campaign_progress (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    counts      jsonb NOT NULL,
    PRIMARY KEY (campaign_id, at)
);
