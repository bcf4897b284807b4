-- qmon store, schema version 2: one counter per kind of loss.
--
-- lost_bytes now counts only bytes the kernel dropped (ring buffer full);
-- before, it also added the stream gaps those same bytes caused.
-- truncated_bytes: bytes qmon chose not to copy (per-call copy limit).
-- gaps, gap_bytes: holes in streams as the parsers saw them, whatever the
-- cause; they overlap the two above by design and are never added to them.
ALTER TABLE recorder_status ADD COLUMN truncated_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recorder_status ADD COLUMN gaps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recorder_status ADD COLUMN gap_bytes INTEGER NOT NULL DEFAULT 0;
