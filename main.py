#!/usr/bin/env python
"""Entry point. With no arguments, runs the default ADS experiment (configs/default.yaml)
on the shipped SmolLM2 model and the offline Wikipedia subset. See README.md."""
import sys

from ads.cli import main

if __name__ == "__main__":
    sys.exit(main())
