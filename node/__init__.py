"""Foundation Coin: node (see its doc essay as it grows)."""
