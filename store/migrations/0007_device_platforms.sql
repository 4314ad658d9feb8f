-- A segment's device.platform leaf is answered from the users table alone: each user keeps the
-- platforms of its valid devices (sorted, without repeats).  At a million users the EXISTS over
-- devices it replaces was a hash semi-join with 600,000 rows, most of a preview's time.
ALTER TABLE users ADD COLUMN device_platforms text[] NOT NULL DEFAULT '{}';

UPDATE users u SET device_platforms = d.platforms
FROM (
    SELECT user_id, array_agg(DISTINCT platform ORDER BY platform) AS platforms
    FROM devices WHERE invalid_at IS NULL AND user_id IS NOT NULL GROUP BY 1
) d
WHERE d.user_id = u.id;

-- One trigger now keeps both summaries (valid_devices from 0005, device_platforms) by computing
-- them again for each user a device change touches: exact whatever the change, and cheap, as a
-- user has a few devices (read through the index devices_valid_user).
DROP TRIGGER devices_count_valid_added_or_removed ON devices;
DROP TRIGGER devices_count_valid_changed ON devices;
DROP FUNCTION devices_count_valid();

CREATE FUNCTION users_summarise_devices(who text) RETURNS void LANGUAGE sql AS $$
    UPDATE users u SET valid_devices = s.n, device_platforms = s.platforms
    FROM (
        SELECT count(*)::integer AS n,
               coalesce(array_agg(DISTINCT platform ORDER BY platform), '{}') AS platforms
        FROM devices WHERE user_id = who AND invalid_at IS NULL
    ) s
    WHERE u.id = who AND (u.valid_devices, u.device_platforms) IS DISTINCT FROM (s.n, s.platforms)
$$;

CREATE FUNCTION devices_summarise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.user_id IS NOT NULL THEN
        PERFORM users_summarise_devices(OLD.user_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.user_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        PERFORM users_summarise_devices(NEW.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_summarise_added_or_removed AFTER INSERT OR DELETE ON devices
FOR EACH ROW EXECUTE FUNCTION devices_summarise();

-- Updates that keep the owner, the validity and the platform (most re-registrations) change nothing.
CREATE TRIGGER devices_summarise_changed AFTER UPDATE OF user_id, invalid_at, platform ON devices
FOR EACH ROW
WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id
      OR (OLD.invalid_at IS NULL) <> (NEW.invalid_at IS NULL)
      OR OLD.platform <> NEW.platform)
EXECUTE FUNCTION devices_summarise();
