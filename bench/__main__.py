"""``python -m bench``: run every scenario and write docs/BENCHMARKS.md."""

from bench.run import main

raise SystemExit(main())
