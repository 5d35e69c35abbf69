"""The bench: `python -m bench` (`make bench`). See bench/__main__.py and docs/performance.md."""
