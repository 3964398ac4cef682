"""Process-level plumbing under everything else: torch threads, the allocator, numeric precision, verified on-disk
caches."""
