"""beth: BPF-extended tracking honeypot — sensors, BETH-format logs and anomaly-detection benchmarks."""

__version__ = "0.1.0"
