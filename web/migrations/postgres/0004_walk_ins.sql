-- Issue 15: walk-ins. An appointment made from a worklist item a local operator added at the
-- gateway (`worklist.item_added_locally`, typically while the cloud was unreachable) is marked
-- 'unconfirmed' until a clinician confirms it as a new appointment or matches it to a booked one
-- (the walk-in then disappears into that appointment); 'confirmed' once confirmed. NULL for an
-- appointment booked in the cloud.
ALTER TABLE appointments ADD COLUMN walk_in TEXT;
