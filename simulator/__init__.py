"""msa simulator: runs firmware, radio and peripherals for real under test."""
