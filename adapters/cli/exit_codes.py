"""The exit codes of every `engine` command, in one place (CI scripts branch on them)."""

EXIT_OK = 0
EXIT_PROBLEMS = 1  # problems in the graph, a run that failed, or a request the server refused
EXIT_USAGE = 2  # a wrong command line, or a file that cannot be read
EXIT_UNREACHABLE = EXIT_USAGE  # `engine ctl`: the control plane cannot be reached
