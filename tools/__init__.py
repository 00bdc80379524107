"""msa tools: the `msa` command line for engineers, technicians and CI."""
