"""``python -m spiketune``: the ``spiketune`` command, for an environment whose scripts
directory is not on the PATH."""

if __name__ == "__main__":
    from spiketune.cli import main

    main()
