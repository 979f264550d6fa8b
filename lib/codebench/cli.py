def main():  # placeholder until cli lands
    raise SystemExit("not yet")
