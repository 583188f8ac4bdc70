"""Controls over where pixels may come from: class resolution, exclusion, region class maps, completion."""
