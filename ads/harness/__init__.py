"""The harness core every generator plugs into: the Generator contract, the one runner, the
registry of kinds. The ADS method itself lives in ads/active_search/."""
