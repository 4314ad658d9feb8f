-- A delivery's row is written three times: created, marked sending, given its outcome. Because
-- `status` was indexed (deliveries_due), neither update could be HOT: each wrote a new entry into
-- every index of the table, about eight index entries per push. Every query deliveries_due served
-- also names the notification, the primary key's prefix, so it can go; with room left on each page
-- (fillfactor) the two updates stay on the page and touch no index.
DROP INDEX deliveries_due;
ALTER TABLE deliveries SET (fillfactor = 60);
