"""msa reference dispatch centre: receives alarms over DC-09, HTTPS JSON and SMS, verifies
each button tag again, dedupes, enriches with the case registry, and shows operators live alarms."""
