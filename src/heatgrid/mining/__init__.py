"""Bitcoin mining: Stratum v1 codec, share validation, header hashing."""
