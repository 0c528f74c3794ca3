"""Foundation Coin: testnet (see its doc essay as it grows)."""
