"""``python -m mnemostore``: the ``mnemostore`` command, for environments without the script on the PATH."""

from mnemostore.cli.main import main

main()
