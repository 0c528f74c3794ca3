"""Foundation Coin: wallet (see its doc essay as it grows)."""
