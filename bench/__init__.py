"""snnkern benchmark suite (pytest-benchmark). Run: python -m pytest bench --benchmark-json=OUT.json"""
