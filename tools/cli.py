"""The msa command line (placeholder while wiring packaging)."""
def main() -> None:
    print("ok")
