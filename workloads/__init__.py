"""Foundation Coin: workloads (see its doc essay as it grows)."""
