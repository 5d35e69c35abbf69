"""The benches: `python -m bench` (`make bench`) and `python -m bench.scale` (`make bench-scale`).
See bench/__main__.py, bench/scale.py and docs/performance.md."""
