"""The firmware's version, shown in Device Information and read back by `msa flash`."""
VERSION = "0.1.0"
