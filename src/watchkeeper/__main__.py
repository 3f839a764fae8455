"""``python -m watchkeeper``: the CLI (how ``watchkeeper serve`` starts its scheduler)."""

from watchkeeper.cli.main import main

if __name__ == "__main__":
    main()
