"""What the stored rows say: the trend report, estimated shares, similar items, charts."""
