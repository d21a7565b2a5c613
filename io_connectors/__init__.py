"""Native Python sources and sinks: each source yields batches of raw records (RawBatch)."""
