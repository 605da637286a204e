"""``python -m dabench`` (and ``torchrun -m dabench``) runs the CLI."""
from dabench.cli import main

if __name__ == "__main__":
    main()
