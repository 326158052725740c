"""The benchmark suite: fan-out, per-user events and reconnect storms on the real stack."""
