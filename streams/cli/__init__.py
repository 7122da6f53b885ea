"""The `makegood` command: one module per group of subcommands."""
