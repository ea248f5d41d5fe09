"""qruntime's benchmarks: each compares qruntime with a baseline measured in the same run."""
