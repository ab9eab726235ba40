import sys

from bsr_lightning.commands import help_text, is_top_level_help

if __name__ == "__main__":
    if is_top_level_help(sys.argv[1:]):
        print(help_text())  # without importing torch or Lightning: about a second
    else:
        from bsr_lightning.cli import main

        main()
