"""msa bench: figures for latency, throughput, footprint and battery life, each beside its target
and its physical floor (see docs/performance.md)."""
