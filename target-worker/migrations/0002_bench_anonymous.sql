-- Anonymous callers recorded by bench requests (x-bench-secret) are marked, so
-- POST /__bench/reset deletes those rows only, never a real visitor's.
ALTER TABLE anonymous_user ADD COLUMN is_bench INTEGER NOT NULL DEFAULT 0;
