"""The Python of tests/readme_harness.py: one process for every Python block of a README run.

Reads "SOURCE<TAB>OUTPUT<TAB>LINE" lines on the descriptor argv[1] and answers "ok" or "error" on argv[2]. Each
block runs in one namespace as if typed at the ``python`` prompt ("single" mode: a bare expression prints its
value), with README.md's line numbers in its tracebacks.
"""

import ast
import os
import sys
import traceback

sys.path[0] = ""  # as `python` started in a terminal: the current folder first, not this file's
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
report = os.fdopen(int(sys.argv[2]), "w", buffering=1)
for request in os.fdopen(int(sys.argv[1])):
    source_path, out_path, line = request.rstrip("\n").split("\t")
    saved = os.dup(1), os.dup(2)
    with open(source_path) as source, open(out_path, "w") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            tree = ast.parse(source.read(), "README.md")
            ast.increment_lineno(tree, int(line) - 1)
            exec(compile(ast.Interactive(body=tree.body), "README.md", "single"), namespace)
            status = "ok"
        except BaseException as error:  # the traceback from the block's first frame on, not this file's
            traceback.print_exception(type(error), error, error.__traceback__.tb_next if error.__traceback__ else None)
            status = "error"
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    for fd in saved:
        os.close(fd)
    report.write(status + "\n")
