-- Herald schema, first version.  Migrations are append-only: change the schema in a new file.

CREATE TABLE users (
    id               text PRIMARY KEY,
    attributes       jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags             text[] NOT NULL DEFAULT '{}',
    timezone         text,
    locale           text,
    marketing_opt_in boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_active_at   timestamptz
);

CREATE TABLE rooms (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    name        text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    direct_key  text UNIQUE,             -- 'a\nb' with the two user ids sorted, for direct rooms
    last_seq    bigint NOT NULL DEFAULT 0,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    room_id       text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    muted_until   timestamptz,
    last_read_seq bigint NOT NULL DEFAULT 0,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_user_id ON members (user_id);

CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id     text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    sender_id   text NOT NULL,
    client_id   text NOT NULL,
    text        text NOT NULL,
    meta        jsonb NOT NULL DEFAULT '{}'::jsonb,
    reply_to    bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    edited_at   timestamptz,
    deleted     boolean NOT NULL DEFAULT false,
    UNIQUE (room_id, seq),
    UNIQUE (room_id, sender_id, client_id)
);

CREATE TABLE devices (
    token          text PRIMARY KEY,
    provider       text NOT NULL CHECK (provider IN ('apns', 'fcm')),
    platform       text NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
    user_id        text REFERENCES users (id) ON DELETE CASCADE,
    app_id         text,
    environment    text NOT NULL DEFAULT 'production' CHECK (environment IN ('sandbox', 'production')),
    locale         text,
    timezone       text,
    app_version    text,
    invalid_at     timestamptz,
    invalid_reason text,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_id ON devices (user_id);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,   -- the first characters of the key, shown in listings
    key_hash     text NOT NULL UNIQUE,   -- sha256 of the whole key; the key itself is never stored
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE segments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    filter      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL,
    status              text NOT NULL DEFAULT 'draft'
                        CHECK (status IN ('draft', 'scheduled', 'running', 'completed', 'cancelled')),
    segment_id          uuid REFERENCES segments (id) ON DELETE SET NULL,
    filter              jsonb,
    content             jsonb NOT NULL DEFAULT '{}'::jsonb,
    schedule            jsonb NOT NULL DEFAULT '{}'::jsonb,
    throttle_per_minute integer,
    frequency_cap       jsonb,
    quiet_hours         jsonb,
    scheduled_at        timestamptz,
    started_at          timestamptz,
    completed_at        timestamptz,
    cancelled_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    api_key_id      bigint REFERENCES api_keys (id) ON DELETE SET NULL,
    idempotency_key text,
    campaign_id     uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    target          jsonb NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'completed')),
    opened          integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    UNIQUE (api_key_id, idempotency_key)
);
CREATE INDEX notifications_unfinished ON notifications (created_at) WHERE status <> 'completed';

CREATE TABLE deliveries (
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    device_token    text NOT NULL,
    provider        text NOT NULL,
    apns_id         uuid NOT NULL DEFAULT gen_random_uuid(),  -- kept across retries and crash resends
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'retrying', 'delivered', 'pruned', 'failed', 'skipped')),
    reason          text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, device_token)
);
CREATE INDEX deliveries_device_token ON deliveries (device_token);
